//! Traffic routing on the real control plane (Istio CRDs installed, no Istio control plane
//! needed): the seed's cases 2.2.4 (VirtualService host split) and 2.2.7 (DestinationRule subset
//! split), abort, Rollout deletion, and the NGINX canary Ingress.

use std::time::Duration;

use anyhow::Result;
use e2e::{TestNamespace, start_rollout_controller, wait_until, with_namespace};
use k8s_openapi::api::{apps::v1::ReplicaSet, networking::v1::Ingress};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use shared_types::rollout::Rollout;

const TIMEOUT: Duration = Duration::from_secs(90);
const V1: &str = "6579c6cc98";
const V2: &str = "7c6fcfb847";

/// Weights of the `primary` route by destination host or subset.
async fn weights(ns: &TestNamespace, stable: &str, canary: &str) -> Result<(i64, i64)> {
    let vs = ns.istio("VirtualService").get("mock-server").await?;
    let route = vs.data["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |key: &str| {
        route
            .iter()
            .find(|d| d["destination"]["host"] == key || d["destination"]["subset"] == key)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(0)
    };
    Ok((weight(stable), weight(canary)))
}

/// `hash -> spec replicas` of every ReplicaSet, when each is fully available.
async fn replica_sets(ns: &TestNamespace) -> Result<Vec<(String, i32)>> {
    let api: Api<ReplicaSet> = ns.api();
    let mut out = Vec::new();
    for rs in api.list(&ListParams::default()).await?.items {
        let spec = rs.spec.replicas.unwrap_or(0);
        let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        let hash = rs
            .labels()
            .get("rollouts-pod-template-hash")
            .cloned()
            .unwrap_or_default();
        out.push((
            if spec == available {
                hash
            } else {
                format!("{hash}(unavailable)")
            },
            spec,
        ));
    }
    out.sort();
    Ok(out)
}

async fn rollout_phase(ns: &TestNamespace) -> Result<(String, String, Option<i32>)> {
    let rollouts: Api<Rollout> = ns.api();
    let ro = rollouts.get("mock-server").await?;
    let observed = ro.status.as_ref().and_then(|s| s.observed_generation.clone())
        == ro.metadata.generation.map(|g| g.to_string());
    let st = ro.status.unwrap_or_default();
    let phase = if observed {
        st.phase.unwrap_or_default()
    } else {
        "<not observed>".into()
    };
    Ok((phase, st.message.unwrap_or_default(), st.current_step_index))
}

/// Waits until phase, step, VirtualService weights and ReplicaSet sizes are as given.
async fn expect(
    ns: &TestNamespace,
    what: &str,
    phase: &str,
    step: i32,
    keys: (&str, &str),
    want_weights: (i64, i64),
    want_rs: &[(&str, i32)],
) -> Result<()> {
    wait_until(what, TIMEOUT, || async {
        let (p, message, s) = rollout_phase(ns).await?;
        let w = weights(ns, keys.0, keys.1).await?;
        let rs = replica_sets(ns).await?;
        let want: Vec<(String, i32)> = want_rs.iter().map(|(h, n)| (h.to_string(), *n)).collect();
        Ok(
            if p == phase && s == Some(step) && w == want_weights && rs == want {
                Ok(())
            } else {
                Err(format!(
                    "phase {p} ({message}) step {s:?} weights {w:?} replica sets {rs:?}"
                ))
            },
        )
    })
    .await
}

async fn set_image(ns: &TestNamespace, image: &str) -> Result<()> {
    let rollouts: Api<Rollout> = ns.api();
    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]);
    rollouts
        .patch(
            "mock-server",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(patch)?),
        )
        .await?;
    Ok(())
}

async fn status_patch(ns: &TestNamespace, status: Value) -> Result<()> {
    let rollouts: Api<Rollout> = ns.api();
    rollouts
        .patch_status(
            "mock-server",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_4_istio_virtual_service() -> Result<()> {
    with_namespace("istio-vs", async |ns| {
        let (_c, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(include_str!(
            "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
        ))
        .await?;
        let hosts = ("mock-server-stable", "mock-server-canary");
        expect(ns, "initial deploy", "Healthy", 5, hosts, (100, 0), &[(V1, 5)]).await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(ns, "20%", "Paused", 1, hosts, (80, 20), &[(V1, 5), (V2, 1)]).await?;
        status_patch(ns, json!({"pauseConditions": null})).await?;
        expect(ns, "40%", "Paused", 3, hosts, (60, 40), &[(V1, 5), (V2, 2)]).await?;
        status_patch(ns, json!({"pauseConditions": null})).await?;
        // Promoted: weights back to stable 100 / canary 0, both Services on revision 2, the old
        // stable ReplicaSet scaled down after its 30 s delay.
        expect(ns, "promoted", "Healthy", 5, hosts, (100, 0), &[(V1, 0), (V2, 5)]).await?;
        let svc: Api<k8s_openapi::api::core::v1::Service> = ns.api();
        for name in ["mock-server-stable", "mock-server-canary"] {
            let sel = svc
                .get(name)
                .await?
                .spec
                .and_then(|s| s.selector)
                .unwrap_or_default();
            anyhow::ensure!(
                sel.get("rollouts-pod-template-hash").map(String::as_str) == Some(V2),
                "{name} selector {sel:?}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn seed_2_2_7_istio_destination_rule() -> Result<()> {
    with_namespace("istio-dr", async |ns| {
        let (_c, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(include_str!(
            "../../examples/seed/manifest16-canary-with-istio-destination-rule-test-case.yaml"
        ))
        .await?;
        let subsets = ("stable", "canary");
        let labels = |ns: &TestNamespace| {
            let api = ns.istio("DestinationRule");
            async move {
                let dr = api.get("mock-server").await?;
                let hash = |name: &str| {
                    dr.data["spec"]["subsets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|s| s["name"] == name)
                        .and_then(|s| {
                            s["labels"]["rollouts-pod-template-hash"]
                                .as_str()
                                .map(str::to_string)
                        })
                        .unwrap_or_default()
                };
                Ok::<_, anyhow::Error>((hash("stable"), hash("canary")))
            }
        };
        expect(ns, "initial deploy", "Healthy", 5, subsets, (100, 0), &[(V1, 5)]).await?;
        anyhow::ensure!(labels(ns).await? == (V1.to_string(), V1.to_string()));
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(ns, "20%", "Paused", 1, subsets, (80, 20), &[(V1, 5), (V2, 1)]).await?;
        anyhow::ensure!(
            labels(ns).await? == (V1.to_string(), V2.to_string()),
            "subset labels {:?}",
            labels(ns).await?
        );
        status_patch(ns, json!({"pauseConditions": null})).await?;
        expect(ns, "40%", "Paused", 3, subsets, (60, 40), &[(V1, 5), (V2, 2)]).await?;
        status_patch(ns, json!({"pauseConditions": null})).await?;
        expect(
            ns,
            "promoted",
            "Healthy",
            5,
            subsets,
            (100, 0),
            &[(V1, 0), (V2, 5)],
        )
        .await?;
        anyhow::ensure!(
            labels(ns).await? == (V2.to_string(), V2.to_string()),
            "subset labels {:?}",
            labels(ns).await?
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn istio_abort_and_rollout_deletion_route_to_stable() -> Result<()> {
    with_namespace("istio-abort", async |ns| {
        let (_c, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(include_str!(
            "../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml"
        ))
        .await?;
        let hosts = ("mock-server-stable", "mock-server-canary");
        expect(ns, "initial deploy", "Healthy", 5, hosts, (100, 0), &[(V1, 5)]).await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        expect(ns, "20%", "Paused", 1, hosts, (80, 20), &[(V1, 5), (V2, 1)]).await?;
        status_patch(ns, json!({"abort": true})).await?;
        // The VirtualService is written before the status in the reconcile that records the
        // abort, so as soon as the abort is visible the weight must already be 0.
        wait_until("abort recorded", TIMEOUT, || async {
            let (p, m, _) = rollout_phase(ns).await?;
            Ok(if p == "Degraded" {
                Ok(())
            } else {
                Err(format!("{p} {m}"))
            })
        })
        .await?;
        let w = weights(ns, hosts.0, hosts.1).await?;
        anyhow::ensure!(w == (100, 0), "weights after abort: {w:?}");

        // Retry, then delete the Rollout mid-update: all traffic goes back to stable.
        status_patch(ns, json!({"abort": false})).await?;
        expect(
            ns,
            "retried at 20%",
            "Paused",
            1,
            hosts,
            (80, 20),
            &[(V1, 5), (V2, 1)],
        )
        .await?;
        let rollouts: Api<Rollout> = ns.api();
        rollouts
            .delete("mock-server", &DeleteParams::background())
            .await?;
        wait_until("VirtualService routes 100% to stable", TIMEOUT, || async {
            let w = weights(ns, hosts.0, hosts.1).await?;
            Ok(if w == (100, 0) {
                Ok(())
            } else {
                Err(format!("{w:?}"))
            })
        })
        .await
    })
    .await
}

const NGINX: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: mock-server
  annotations: {kubernetes.io/ingress.class: nginx}
spec:
  rules:
  - host: mock.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: mock-server-stable, port: {number: 8080}}
"#;

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn nginx_canary_ingress_follows_the_weight() -> Result<()> {
    with_namespace("nginx", async |ns| {
        let (_c, _) = start_rollout_controller(ns, &[]).await?;
        let manifest = include_str!("../../examples/seed/manifest12-canary-with-undo-and-abort-test-case.yaml").replacen(
            "      stableService: mock-server-stable\n",
            "      stableService: mock-server-stable\n      trafficRouting:\n        nginx:\n          stableIngress: mock-server\n",
            1,
        );
        ns.apply(NGINX).await?;
        ns.apply(&manifest).await?;
        let ingresses: Api<Ingress> = ns.api();
        let canary_weight = || async {
            Ok::<_, anyhow::Error>(ingresses.get_opt("mock-server-mock-server-canary").await?.map(|i| {
                let ann = i.annotations().clone();
                (ann.get("nginx.ingress.kubernetes.io/canary").cloned(), ann.get("nginx.ingress.kubernetes.io/canary-weight").cloned())
            }))
        };
        wait_until("initial deploy", TIMEOUT, || async {
            let (p, m, _) = rollout_phase(ns).await?;
            Ok(if p == "Healthy" { Ok(()) } else { Err(format!("{p} {m}")) })
        })
        .await?;
        set_image(ns, "ghcr.io/ssup2/mock-go-server:2.0.0").await?;
        wait_until("canary Ingress at weight 20", TIMEOUT, || async {
            let w = canary_weight().await?;
            Ok(if w == Some((Some("true".into()), Some("20".into()))) { Ok(()) } else { Err(format!("{w:?}")) })
        })
        .await?;
        let canary = ingresses.get("mock-server-mock-server-canary").await?;
        let backend = canary.spec.clone().and_then(|s| s.rules).and_then(|r| r[0].http.clone()).map(|h| h.paths[0].backend.clone());
        let svc = backend.and_then(|b| b.service).map(|s| s.name);
        anyhow::ensure!(svc.as_deref() == Some("mock-server-canary"), "canary Ingress backend {svc:?}");
        status_patch(ns, json!({"promoteFull": true})).await?;
        wait_until("canary Ingress removed after promotion", TIMEOUT, || async {
            let (p, m, _) = rollout_phase(ns).await?;
            let w = canary_weight().await?;
            Ok(if p == "Healthy" && w.is_none() { Ok(()) } else { Err(format!("{p} {m} {w:?}")) })
        })
        .await
    })
    .await
}
