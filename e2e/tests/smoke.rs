//! Smoke tests of the local control plane itself: the parts of Kubernetes our controllers rely
//! on (ReplicaSets making ready Pods, EndpointSlices, garbage collection, Jobs) and our CRDs
//! (status subresources, validation, short names, the `argo-rollouts` category).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::{TestNamespace, kubeconfig_path, wait_until, with_namespace};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    batch::v1::Job,
    core::v1::Pod,
    discovery::v1::EndpointSlice,
};
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example.invalid/web:1, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

async fn ready_pods_with_ips(ns: &TestNamespace, selector: &str) -> Result<Vec<String>> {
    let pods: Api<Pod> = ns.api();
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            let status = p.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready && status.phase.as_deref() == Some("Running") && p.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
        .collect())
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn deployment_pods_endpoints_and_garbage_collection() -> Result<()> {
    with_namespace("smoke-deploy", async |ns| {
        ns.apply(DEPLOYMENT).await?;
        wait_until("5 ready pods with IPs", TIMEOUT, || async {
            let ips = ready_pods_with_ips(ns, "app=web").await?;
            Ok(if ips.len() == 5 {
                Ok(())
            } else {
                Err(format!("{} ready pods: {ips:?}", ips.len()))
            })
        })
        .await?;
        let ips = ready_pods_with_ips(ns, "app=web").await?;
        let unique: std::collections::BTreeSet<_> = ips.iter().collect();
        ensure!(unique.len() == 5, "pod IPs must be distinct: {ips:?}");

        let slices: Api<EndpointSlice> = ns.api();
        wait_until("an EndpointSlice with the 5 pod addresses", TIMEOUT, || async {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await?;
            let mut addresses: Vec<String> = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten().flat_map(|e| e.addresses.clone()))
                .collect();
            addresses.sort();
            let mut want = ips.clone();
            want.sort();
            Ok(if addresses == want {
                Ok(())
            } else {
                Err(format!("addresses {addresses:?}, pods {want:?}"))
            })
        })
        .await?;

        let deployments: Api<Deployment> = ns.api();
        deployments.delete("web", &DeleteParams::background()).await?;
        let replica_sets: Api<ReplicaSet> = ns.api();
        let pods: Api<Pod> = ns.api();
        wait_until("ReplicaSet and Pods garbage-collected", TIMEOUT, || async {
            let rs = replica_sets.list(&ListParams::default()).await?.items.len();
            let p = pods.list(&ListParams::default()).await?.items.len();
            Ok(if rs == 0 && p == 0 {
                Ok(())
            } else {
                Err(format!("{rs} ReplicaSets, {p} Pods left"))
            })
        })
        .await
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn job_completes() -> Result<()> {
    with_namespace("smoke-job", async |ns| {
        ns.apply(
            r#"
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: example.invalid/once:1}]
"#,
        )
        .await?;
        let jobs: Api<Job> = ns.api();
        wait_until("Job succeeded", TIMEOUT, || async {
            let job = jobs.get("once").await?;
            let status = job.status.unwrap_or_default();
            let complete = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True");
            Ok(if complete && status.succeeded == Some(1) {
                Ok(())
            } else {
                Err(format!("succeeded={:?}", status.succeeded))
            })
        })
        .await
    })
    .await
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind), plural)
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn custom_resources_status_subresource_and_validation() -> Result<()> {
    with_namespace("smoke-crd", async |ns| {
        let objects = [
            ("Rollout", "rollouts", json!({"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}},
                "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}), true),
            ("AnalysisTemplate", "analysistemplates", json!({"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}]}), false),
            ("AnalysisRun", "analysisruns", json!({"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}]}), true),
            ("Experiment", "experiments", json!({"templates": [{"name": "t", "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}}}]}), true),
        ];
        for (kind, plural, spec, has_status) in objects {
            let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource(kind, plural));
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": "demo"}, "spec": spec
            }))?;
            api.create(&PostParams::default(), &obj).await.with_context(|| format!("creating {kind}"))?;
            if has_status {
                let status = json!({"status": {"phase": "Running", "message": "written through /status"}});
                let patched = api
                    .patch_status("demo", &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .with_context(|| format!("{kind} /status"))?;
                ensure!(patched.data["status"]["message"] == "written through /status", "{kind} status not written");
                // A status change through the main resource is ignored when /status exists.
                let ignored = api.patch("demo", &PatchParams::default(), &Patch::Merge(&json!({"status": {"message": "main"}}))).await?;
                ensure!(ignored.data["status"]["message"] == "written through /status", "{kind} main resource changed status");
            }
        }
        let rollouts: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource("Rollout", "rollouts"));
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "bad"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "strategy": {"canary": {"steps": [{"setWeight": "abc"}]}}}
        }))?;
        let err = rollouts.create(&PostParams::default(), &bad).await.err().context("setWeight: \"abc\" must be rejected")?;
        let msg = err.to_string();
        ensure!(msg.contains("spec.strategy.canary.steps[0].setWeight"), "error does not name the field: {msg}");

        // The selector is immutable (CEL rule on the CRD).
        let change = json!({"spec": {"selector": {"matchLabels": {"app": "y"}}}});
        let err = rollouts.patch("demo", &PatchParams::default(), &Patch::Merge(&change)).await.err().context("selector change must be rejected")?;
        ensure!(err.to_string().contains(".spec.selector is immutable"), "unexpected error: {err}");
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run scripts/test.sh"]
async fn kubectl_short_names_and_category() -> Result<()> {
    with_namespace("smoke-kubectl", async |ns| {
        ns.apply(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {name: run1}
spec:
  metrics: [{name: m, provider: {web: {url: "http://x"}}}]
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: tmpl1}
spec:
  metrics: [{name: m, provider: {web: {url: "http://x"}}}]
"#,
        )
        .await?;
        let kubectl = std::env::var("ARGO_RS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig_path().unwrap_or_default())
                .arg("-n")
                .arg(&ns.name)
                .args(args)
                .output();
            out.map(|o| {
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
                )
            })
        };
        let (ok, out) = run(&["get", "ro,ar,exp"])?;
        ensure!(
            ok && out.contains("analysisrun.argoproj.io/run1"),
            "kubectl get ro,ar,exp: {out}"
        );
        let (ok, out) = run(&["get", "argo-rollouts"])?;
        ensure!(
            ok && out.contains("analysisrun.argoproj.io/run1")
                && out.contains("analysistemplate.argoproj.io/tmpl1"),
            "kubectl get argo-rollouts: {out}"
        );
        let (ok, out) = run(&["get", "at"])?;
        ensure!(ok && out.contains("tmpl1"), "kubectl get at: {out}");
        let (ok, out) = run(&["explain", "rollout.spec.strategy.canary"])?;
        ensure!(
            ok && out.contains("steps") && out.contains("canary"),
            "kubectl explain: {out}"
        );
        Ok(())
    })
    .await
}
