//! Compatibility cases found by driving the rollout controller as an Argo Rollouts user would:
//! numeric resource quantities, malformed quantities, invalid specs that are fixed later,
//! blue-green to canary, removing traffic routing, TLS-only VirtualServices and ping-pong.

use std::time::Duration;

use anyhow::Result;
use e2e::{
    TestNamespace,
    rollout_ops::{TIMEOUT, json_patch, merge, phase, promote, set_image, wait_phase},
    start_rollout_controller, wait_for, wait_until, with_namespace,
};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use shared_types::rollout::Rollout;

/// Go's pod-template hash of [`numeric_rollout`]'s template (shared-types/tools/gohash,
/// vector `e2e-numeric-quantities`).
const NUMERIC_HASH: &str = "55c75c5d9";

fn numeric_rollout(name: &str, resources: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: numeric}}}}
  strategy:
    canary:
      steps: [{{setWeight: 50}}, {{pause: {{}}}}]
  template:
    metadata: {{labels: {{app: numeric}}}}
    spec:
      containers:
      - name: app
        image: example.com/app:1
        resources: {resources}
"#
    )
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn numeric_quantities_are_accepted_and_hash_like_go() -> Result<()> {
    with_namespace("numeric", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&numeric_rollout(
            "numeric",
            "{requests: {cpu: 1, memory: 1024}, limits: {cpu: 2, memory: 2147483648}}",
        ))
        .await?;
        wait_phase(ns, "numeric", "Healthy").await?;
        let rss = e2e::names(&ns.api::<ReplicaSet>()).await?;
        anyhow::ensure!(
            rss == vec![format!("numeric-{NUMERIC_HASH}")],
            "ReplicaSets {rss:?}, want the Go hash {NUMERIC_HASH}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn malformed_quantity_is_invalid_spec_and_others_progress() -> Result<()> {
    with_namespace("badquantity", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&numeric_rollout("broken", "{limits: {memory: invalid}}"))
            .await?;
        ns.apply(&numeric_rollout("fine", "{limits: {memory: 1Gi}}").replace("app: numeric", "app: fine"))
            .await?;
        wait_phase(ns, "fine", "Healthy").await?;
        wait_until("broken reports the field", TIMEOUT, || async {
            let (p, m) = phase(ns, "broken").await?;
            let want = "InvalidSpec: The Rollout \"broken\" is invalid: spec.template.spec.containers[0].resources.limits.memory: Invalid value: \"invalid\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
            Ok(if p == "Degraded" && m == want { Ok(()) } else { Err(format!("{p}: {m}")) })
        })
        .await?;
        // Listing Rollouts (what every client does) still works with the malformed one present.
        let (code, out, err) = e2e::argo_rollouts(ns, &["list", "rollouts"]).await?;
        anyhow::ensure!(code == 0, "list rollouts failed: {err}");
        anyhow::ensure!(
            out.contains("broken") && out.contains("fine"),
            "list rollouts output:\n{out}"
        );
        anyhow::ensure!(
            ns.api::<ReplicaSet>()
                .list(&ListParams::default().labels("app=numeric"))
                .await?
                .items
                .is_empty(),
            "a ReplicaSet was created for the malformed template"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn invalid_update_degrades_then_the_fix_progresses() -> Result<()> {
    with_namespace("degrade", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&numeric_rollout("demo", "{}")).await?;
        wait_phase(ns, "demo", "Healthy").await?;
        // An update that cannot be valid: both maxSurge and maxUnavailable zero.
        merge(
            ns,
            "demo",
            json!({"spec": {"strategy": {"canary": {"maxSurge": 0, "maxUnavailable": 0}}}}),
        )
        .await?;
        wait_until("Degraded with Argo's message", Duration::from_secs(15), || async {
            let (p, m) = phase(ns, "demo").await?;
            let want = "InvalidSpec: The Rollout \"demo\" is invalid: spec.strategy.canary.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable both can not be zero";
            Ok(if p == "Degraded" && m == want { Ok(()) } else { Err(format!("{p}: {m}")) })
        })
        .await?;
        let cond = ns.api::<Rollout>().get("demo").await?.status.unwrap_or_default();
        anyhow::ensure!(
            cond.condition("InvalidSpec").is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec"),
            "no InvalidSpec condition: {:?}",
            cond.conditions
        );
        // Fixing the spec (and changing the image) makes it progress to the pause step.
        json_patch(
            ns,
            "demo",
            json!([
                {"op": "remove", "path": "/spec/strategy/canary/maxSurge"},
                {"op": "remove", "path": "/spec/strategy/canary/maxUnavailable"},
                {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "example.com/app:2"}
            ]),
        )
        .await?;
        wait_phase(ns, "demo", "Paused").await?;
        let st = ns.api::<Rollout>().get("demo").await?.status.unwrap_or_default();
        anyhow::ensure!(st.condition("InvalidSpec").is_none(), "InvalidSpec kept after the fix");
        promote(ns, "demo").await?;
        wait_phase(ns, "demo", "Healthy").await
    })
    .await
}

fn blue_green_app() -> &'static str {
    r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: switch}
spec:
  replicas: 2
  selector: {matchLabels: {app: switch}}
  strategy:
    blueGreen: {activeService: switch-active, previewService: switch-preview}
  template:
    metadata: {labels: {app: switch}}
    spec:
      containers: [{name: app, image: "example.com/app:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: switch-active}
spec:
  selector: {app: switch}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: switch-preview}
spec:
  selector: {app: switch}
  ports: [{port: 80}]
"#
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn blue_green_to_canary_releases_the_services() -> Result<()> {
    with_namespace("bg2canary", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(blue_green_app()).await?;
        wait_phase(ns, "switch", "Healthy").await?;
        let services: Api<Service> = ns.api();
        let selector = |svc: &Service| svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        let active = services.get("switch-active").await?;
        anyhow::ensure!(
            selector(&active).contains_key("rollouts-pod-template-hash"),
            "active Service not managed: {:?}",
            selector(&active)
        );
        json_patch(
            ns,
            "switch",
            json!([{"op": "replace", "path": "/spec/strategy", "value": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}]),
        )
        .await?;
        for name in ["switch-active", "switch-preview"] {
            wait_until(&format!("{name} released"), TIMEOUT, || async {
                let svc = services.get(name).await?;
                let sel = selector(&svc);
                let managed = svc.annotations().contains_key("argo-rollouts.argoproj.io/managed-by-rollouts");
                Ok(if sel.len() == 1 && sel.get("app").map(String::as_str) == Some("switch") && !managed {
                    Ok(())
                } else {
                    Err(format!("selector {sel:?}, managed-by annotation: {managed}"))
                })
            })
            .await?;
        }
        wait_phase(ns, "switch", "Healthy").await
    })
    .await
}

fn subset_split_app() -> String {
    include_str!("../../examples/seed/manifest16-canary-with-istio-destination-rule-test-case.yaml")
        .replace("replicas: 5", "replicas: 2")
}

/// Labels of each DestinationRule subset, and whether the DestinationRule is marked as ours.
async fn destination_rule(ns: &TestNamespace) -> Result<(Vec<(String, Value)>, bool)> {
    let dr = ns.istio("DestinationRule").get("mock-server").await?;
    let subsets = dr.data["spec"]["subsets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["labels"].clone(),
            )
        })
        .collect();
    let managed = dr
        .annotations()
        .contains_key("argo-rollouts.argoproj.io/managed-by-rollouts");
    Ok((subsets, managed))
}

async fn expect_released_destination_rule(ns: &TestNamespace) -> Result<()> {
    wait_until("DestinationRule released", TIMEOUT, || async {
        let (subsets, managed) = destination_rule(ns).await?;
        let clean = subsets
            .iter()
            .all(|(_, labels)| *labels == json!({"app": "mock-server"}));
        Ok(if clean && !managed {
            Ok(())
        } else {
            Err(format!("subsets {subsets:?}, managed-by annotation: {managed}"))
        })
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn removing_traffic_routing_releases_the_destination_rule() -> Result<()> {
    with_namespace("drremove", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(&subset_split_app()).await?;
        wait_phase(ns, "mock-server", "Healthy").await?;
        wait_until("DestinationRule managed", TIMEOUT, || async {
            let (subsets, managed) = destination_rule(ns).await?;
            let hashed = subsets
                .iter()
                .all(|(_, l)| l.get("rollouts-pod-template-hash").is_some());
            Ok(if managed && hashed { Ok(()) } else { Err(format!("{subsets:?} managed={managed}")) })
        })
        .await?;
        // First only the DestinationRule is dropped (host split needs the two Services).
        let services = r#"
apiVersion: v1
kind: Service
metadata: {name: mock-server-canary}
spec: {selector: {app: mock-server}, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: mock-server-stable}
spec: {selector: {app: mock-server}, ports: [{port: 8080}]}
"#;
        ns.apply(services).await?;
        json_patch(
            ns,
            "mock-server",
            json!([
                {"op": "remove", "path": "/spec/strategy/canary/trafficRouting/istio/destinationRule"},
                {"op": "add", "path": "/spec/strategy/canary/canaryService", "value": "mock-server-canary"},
                {"op": "add", "path": "/spec/strategy/canary/stableService", "value": "mock-server-stable"},
            ]),
        )
        .await?;
        // The VirtualService must now name the Services as hosts for the split to validate.
        let vs = ns.istio("VirtualService");
        vs.patch(
            "mock-server",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"http": [{"name": "primary", "route": [
                {"destination": {"host": "mock-server-stable"}, "weight": 100},
                {"destination": {"host": "mock-server-canary"}, "weight": 0}
            ]}]}})),
        )
        .await?;
        expect_released_destination_rule(ns).await?;
        wait_phase(ns, "mock-server", "Healthy").await?;
        // Put the DestinationRule back, let it be managed again, then drop trafficRouting whole.
        json_patch(
            ns,
            "mock-server",
            json!([
                {"op": "add", "path": "/spec/strategy/canary/trafficRouting/istio/destinationRule",
                 "value": {"name": "mock-server", "stableSubsetName": "stable", "canarySubsetName": "canary"}},
                {"op": "remove", "path": "/spec/strategy/canary/canaryService"},
                {"op": "remove", "path": "/spec/strategy/canary/stableService"},
            ]),
        )
        .await?;
        vs.patch(
            "mock-server",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"http": [{"name": "primary", "route": [
                {"destination": {"host": "mock-server", "subset": "stable"}, "weight": 100},
                {"destination": {"host": "mock-server", "subset": "canary"}, "weight": 0}
            ]}]}})),
        )
        .await?;
        wait_until("DestinationRule managed again", TIMEOUT, || async {
            let (subsets, managed) = destination_rule(ns).await?;
            Ok(if managed { Ok(()) } else { Err(format!("{subsets:?}")) })
        })
        .await?;
        json_patch(
            ns,
            "mock-server",
            json!([{"op": "remove", "path": "/spec/strategy/canary/trafficRouting"}]),
        )
        .await?;
        expect_released_destination_rule(ns).await?;
        wait_phase(ns, "mock-server", "Healthy").await
    })
    .await
}

fn tls_app() -> &'static str {
    r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: tls}
spec:
  replicas: 2
  selector: {matchLabels: {app: tls}}
  strategy:
    canary:
      canaryService: tls-canary
      stableService: tls-stable
      steps: [{setWeight: 30}, {pause: {}}]
      trafficRouting:
        istio:
          virtualService:
            name: tls
            # Argo's istio-host-only-tls-split case: an HTTP route is named, the VirtualService
            # has only TLS routes.
            routes: [primary]
            tlsRoutes:
            - port: 443
              sniHosts: [tls.example.com]
  template:
    metadata: {labels: {app: tls}}
    spec:
      containers: [{name: app, image: "example.com/app:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: tls-canary}
spec: {selector: {app: tls}, ports: [{port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: tls-stable}
spec: {selector: {app: tls}, ports: [{port: 443}]}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: tls}
spec:
  hosts: [tls.example.com]
  tls:
  - match:
    - port: 443
      sniHosts: [tls.example.com]
    route:
    - destination: {host: tls-stable}
      weight: 100
    - destination: {host: tls-canary}
      weight: 0
"#
}

async fn tls_weights(ns: &TestNamespace) -> Result<(i64, i64)> {
    let vs = ns.istio("VirtualService").get("tls").await?;
    let route = vs.data["spec"]["tls"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |host: &str| {
        route
            .iter()
            .find(|d| d["destination"]["host"] == host)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    Ok((weight("tls-stable"), weight("tls-canary")))
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn tls_only_virtual_service_is_weighted() -> Result<()> {
    with_namespace("tlsonly", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(tls_app()).await?;
        wait_phase(ns, "tls", "Healthy").await?;
        set_image(ns, "tls", "example.com/app:2").await?;
        wait_phase(ns, "tls", "Paused").await?;
        wait_for("TLS route at 70/30", TIMEOUT, || async {
            Ok(((tls_weights(ns).await?) == (70, 30)).then_some(()))
        })
        .await?;
        promote(ns, "tls").await?;
        wait_phase(ns, "tls", "Healthy").await?;
        wait_for("TLS route back at 100/0", TIMEOUT, || async {
            Ok(((tls_weights(ns).await?) == (100, 0)).then_some(()))
        })
        .await
    })
    .await
}

fn ping_pong_app() -> &'static str {
    r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: pp}
spec:
  replicas: 2
  selector: {matchLabels: {app: pp}}
  strategy:
    canary:
      pingPong: {pingService: pp-ping, pongService: pp-pong}
      steps: [{setWeight: 25}, {pause: {}}]
      trafficRouting:
        istio:
          virtualService: {name: pp, routes: [primary]}
  template:
    metadata: {labels: {app: pp}}
    spec:
      containers: [{name: app, image: "example.com/app:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: pp-ping}
spec: {selector: {app: pp}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: pp-pong}
spec: {selector: {app: pp}, ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: pp}
spec:
  hosts: [pp]
  http:
  - name: primary
    route:
    - destination: {host: pp-ping}
      weight: 100
    - destination: {host: pp-pong}
      weight: 0
"#
}

/// `(ping weight, pong weight, ping selector hash, pong selector hash, stablePingPong)`.
async fn ping_pong_state(ns: &TestNamespace) -> Result<(i64, i64, String, String, String)> {
    let vs = ns.istio("VirtualService").get("pp").await?;
    let route = vs.data["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |host: &str| {
        route
            .iter()
            .find(|d| d["destination"]["host"] == host)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    let services: Api<Service> = ns.api();
    let mut hashes = Vec::new();
    for name in ["pp-ping", "pp-pong"] {
        let svc = services.get(name).await?;
        hashes.push(
            svc.spec
                .and_then(|s| s.selector)
                .and_then(|s| s.get("rollouts-pod-template-hash").cloned())
                .unwrap_or_default(),
        );
    }
    let stable = ns
        .api::<Rollout>()
        .get("pp")
        .await?
        .status
        .and_then(|s| s.canary)
        .and_then(|c| c.stable_ping_pong)
        .unwrap_or_default();
    Ok((
        weight("pp-ping"),
        weight("pp-pong"),
        hashes.remove(0),
        hashes.remove(0),
        stable,
    ))
}

async fn current_hash(ns: &TestNamespace) -> Result<String> {
    Ok(ns
        .api::<Rollout>()
        .get("pp")
        .await?
        .status
        .and_then(|s| s.current_pod_hash)
        .unwrap_or_default())
}

async fn expect_ping_pong(ns: &TestNamespace, what: &str, want: (i64, i64, &str, &str, &str)) -> Result<()> {
    wait_until(what, TIMEOUT, || async {
        let got = ping_pong_state(ns).await?;
        let want = (
            want.0,
            want.1,
            want.2.to_string(),
            want.3.to_string(),
            want.4.to_string(),
        );
        Ok(if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}, want {want:?}"))
        })
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn ping_pong_services_swap_roles_through_two_updates() -> Result<()> {
    with_namespace("pingpong", async |ns| {
        let (_controller, _) = start_rollout_controller(ns, &[]).await?;
        ns.apply(ping_pong_app()).await?;
        wait_phase(ns, "pp", "Healthy").await?;
        let v1 = current_hash(ns).await?;
        // After the first deploy ping is stable and takes all traffic.
        expect_ping_pong(ns, "first deploy", (100, 0, &v1, "", "ping")).await?;

        set_image(ns, "pp", "example.com/app:2").await?;
        wait_phase(ns, "pp", "Paused").await?;
        let v2 = current_hash(ns).await?;
        expect_ping_pong(ns, "update 2 at 25%", (75, 25, &v1, &v2, "ping")).await?;
        promote(ns, "pp").await?;
        wait_phase(ns, "pp", "Healthy").await?;
        // pong, which already selects the new pods, is stable now.
        expect_ping_pong(ns, "update 2 promoted", (0, 100, &v1, &v2, "pong")).await?;

        set_image(ns, "pp", "example.com/app:3").await?;
        wait_phase(ns, "pp", "Paused").await?;
        let v3 = current_hash(ns).await?;
        expect_ping_pong(ns, "update 3 at 25% (ping is canary)", (25, 75, &v3, &v2, "pong")).await?;
        promote(ns, "pp").await?;
        wait_phase(ns, "pp", "Healthy").await?;
        expect_ping_pong(ns, "update 3 promoted", (100, 0, &v3, &v2, "ping")).await
    })
    .await
}
