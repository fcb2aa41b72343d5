//! Leader election against a real API server. Needs a cluster: run with
//! `ARGO_RS_E2E_KUBECONFIG=<kubeconfig> cargo test -p shared-runtime --test leader -- --ignored`.
//! Each test works in its own namespace, created and deleted here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::Namespace,
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use shared_runtime::leader::{self, LeaderArgs, Leadership};
use tokio_util::sync::CancellationToken;

const LEASE: &str = "test-lock";
/// Lease duration of the tests: short so takeovers after a crash happen within seconds.
const LEASE_DURATION: Duration = Duration::from_secs(2);

async fn client() -> Client {
    let path = PathBuf::from(
        std::env::var("ARGO_RS_E2E_KUBECONFIG").expect("ARGO_RS_E2E_KUBECONFIG names a kubeconfig"),
    );
    shared_runtime::client(Some(&path), "leader-test")
        .await
        .expect("client from kubeconfig")
}

/// A fresh namespace, deleted when dropped.
struct TestNamespace {
    client: Client,
    name: String,
}

impl TestNamespace {
    async fn create(client: &Client) -> Self {
        let name = format!("leader-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        Self {
            client: client.clone(),
            name,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let (client, name) = (self.client.clone(), self.name.clone());
        // Drop cannot await; a plain thread with its own runtime can, also while panicking.
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| {
                    rt.block_on(async {
                        Api::<Namespace>::all(client)
                            .delete(&name, &DeleteParams::default())
                            .await
                            .is_ok()
                    })
                })
                .unwrap_or(false)
        })
        .join();
        if !matches!(deleted, Ok(true)) {
            eprintln!("could not delete test namespace {}", self.name);
        }
    }
}

fn args(namespace: &str) -> LeaderArgs {
    LeaderArgs {
        leader_elect: true,
        leader_election_namespace: Some(namespace.to_string()),
        leader_election_lease_duration: LEASE_DURATION,
        leader_election_renew_deadline: Duration::from_secs(1),
        leader_election_retry_period: Duration::from_millis(200),
    }
}

struct Candidate {
    leadership: Leadership,
    shutdown: CancellationToken,
}

fn candidate(client: &Client, namespace: &str) -> Candidate {
    let shutdown = CancellationToken::new();
    let leadership =
        leader::start(client.clone(), &args(namespace), LEASE, shutdown.clone()).expect("valid flags");
    Candidate { leadership, shutdown }
}

async fn holder(client: &Client, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get(LEASE)
        .await
        .expect("lease readable")
        .spec
        .and_then(|s| s.holder_identity)
}

async fn leads_within(c: &Candidate, limit: Duration) -> Duration {
    let start = Instant::now();
    let led = tokio::time::timeout(limit, c.leadership.became_leader())
        .await
        .expect("leads in time");
    assert!(led, "election ended without leadership");
    start.elapsed()
}

fn gauge(leadership: &Leadership) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    leadership.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: set ARGO_RS_E2E_KUBECONFIG"]
async fn one_leads_release_hands_over_at_once_and_a_crash_after_the_lease_duration() {
    let client = client().await;
    let ns = TestNamespace::create(&client).await;

    let a = candidate(&client, &ns.name);
    let b = candidate(&client, &ns.name);
    assert_ne!(a.leadership.identity(), b.leadership.identity());
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = a.leadership.became_leader() => {},
            _ = b.leadership.became_leader() => {},
        }
    })
    .await
    .expect("someone leads");
    // Several renewals and standby retries later, still exactly one leads.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.leadership.is_leader() ^ b.leadership.is_leader());
    let (leader, standby) = if a.leadership.is_leader() { (a, b) } else { (b, a) };
    assert_eq!(
        holder(&client, &ns.name).await.as_deref(),
        Some(leader.leadership.identity())
    );
    assert!(gauge(&leader.leadership).contains("controller_leader 1"));
    assert!(gauge(&standby.leadership).contains("controller_leader 0"));

    // Shutdown releases: the standby takes over well before the lease would have expired.
    leader.shutdown.cancel();
    let released_at = Instant::now();
    leader.leadership.stopped().await;
    let took = leads_within(&standby, Duration::from_secs(5)).await;
    assert!(
        released_at.elapsed() < LEASE_DURATION,
        "took over {:?} after release",
        released_at.elapsed()
    );
    assert!(took < LEASE_DURATION);
    assert_eq!(
        holder(&client, &ns.name).await.as_deref(),
        Some(standby.leadership.identity())
    );

    // A crash (election dropped, nothing released): the next standby waits out the lease.
    let next = candidate(&client, &ns.name);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!next.leadership.is_leader(), "the lease is still held");
    drop(standby.leadership);
    let took = leads_within(&next, Duration::from_secs(10)).await;
    assert!(
        took >= LEASE_DURATION - Duration::from_millis(500),
        "took over after {took:?}, before the lease expired"
    );
    assert!(took < LEASE_DURATION * 2, "took over after {took:?}");
    next.shutdown.cancel();
    next.leadership.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: set ARGO_RS_E2E_KUBECONFIG"]
async fn a_leader_whose_lease_is_taken_reports_lost() {
    let client = client().await;
    let ns = TestNamespace::create(&client).await;
    let a = candidate(&client, &ns.name);
    leads_within(&a, Duration::from_secs(10)).await;

    // Someone else overwrites the Lease (as a standby would after a partition).
    let api = Api::<Lease>::namespaced(client.clone(), &ns.name);
    let mut lease = api.get(LEASE).await.expect("lease exists");
    let now = Some(MicroTime(Timestamp::now()));
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("intruder".into()),
        lease_duration_seconds: Some(60),
        acquire_time: now.clone(),
        renew_time: now,
        ..Default::default()
    });
    api.replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("lease replaced");

    tokio::time::timeout(Duration::from_secs(3), a.leadership.lost())
        .await
        .expect("loss noticed at the next renewal");
    assert!(!a.leadership.is_leader());
    assert!(gauge(&a.leadership).contains("controller_leader 0"));
    // No release of a Lease this process no longer holds.
    a.shutdown.cancel();
    a.leadership.stopped().await;
    assert_eq!(holder(&client, &ns.name).await.as_deref(), Some("intruder"));
}
