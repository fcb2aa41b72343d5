//! NGINX Ingress: the canary Ingress `<rollout>-<stableIngress>-canary` that the NGINX ingress
//! controller merges with the stable Ingress and splits by its `canary-weight` annotation
//! (Argo's `rollout/trafficrouting/nginx`).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{Ingress, IngressSpec},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use shared_types::rollout::NginxTrafficRouting;

use super::{ObjectKind, Problem, TrafficError};

/// Suffix of canary Ingress names.
pub const CANARY_INGRESS_SUFFIX: &str = "-canary";
/// Longest object name Kubernetes accepts (DNS subdomain).
const MAX_NAME_LENGTH: usize = 253;
/// The ingress-class annotation, the one stable annotation the canary Ingress must share so the
/// same NGINX controller picks it up.
const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Name of the canary Ingress for a stable Ingress: `<rollout>-<stableIngress>-canary`, with
/// the `<rollout>-<stableIngress>` prefix cut so the whole name fits in 253 characters.
pub fn canary_ingress_name(rollout_name: &str, stable_ingress: &str) -> String {
    let mut prefix = format!("{rollout_name}-{stable_ingress}");
    let max = MAX_NAME_LENGTH - CANARY_INGRESS_SUFFIX.len();
    if prefix.len() > max {
        // Names are ASCII in practice; stepping back to a char boundary keeps this panic-free.
        let mut cut = max;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix + CANARY_INGRESS_SUFFIX
}

/// What [`canary_ingress`] needs to know about the Rollout.
#[derive(Clone, Copy, Debug)]
pub struct CanaryIngressParams<'a> {
    /// Name of the Rollout.
    pub rollout_name: &'a str,
    /// UID of the Rollout, for the controller owner reference.
    pub rollout_uid: &'a str,
    /// `trafficRouting.nginx`.
    pub nginx: &'a NginxTrafficRouting,
    /// `trafficRouting.maxTrafficWeight` as written in the spec (not defaulted): when set, it is
    /// passed on as `canary-weight-total`.
    pub max_traffic_weight: Option<i32>,
    /// `canaryService`.
    pub canary_service: &'a str,
    /// `stableService`.
    pub stable_service: &'a str,
    /// Desired canary weight.
    pub weight: i32,
}

/// The desired canary Ingress for `stable` (Argo's `buildCanaryIngress`):
///
/// * name [`canary_ingress_name`], namespace of the stable Ingress, a controller owner
///   reference to the Rollout (so it is garbage-collected with it);
/// * the stable Ingress's rules that have a path backed by the stable Service, with those
///   backends pointed at the canary Service (other rules are left out: NGINX would otherwise
///   send canary traffic for hosts the Rollout does not own); TLS and `ingressClassName` copied;
/// * annotations: `kubernetes.io/ingress.class` copied, `additionalIngressAnnotations` (prefixed
///   with `<prefix>/` unless they already are), `canaryIngressAnnotations` as they are, then
///   `<prefix>/canary: "true"`, `<prefix>/canary-weight: "<W>"` and, with `maxTrafficWeight`,
///   `<prefix>/canary-weight-total`, which always win.
///
/// Fails when no path of the stable Ingress uses the stable Service.
pub fn canary_ingress(stable: &Ingress, params: &CanaryIngressParams) -> Result<Ingress, TrafficError> {
    let stable_name = stable.metadata.name.as_deref().unwrap_or_default();
    let prefix = params.nginx.annotation_prefix();
    let stable_spec = stable.spec.as_ref();

    let mut rules = Vec::new();
    for rule in stable_spec.and_then(|s| s.rules.as_deref()).unwrap_or_default() {
        let mut rule = rule.clone();
        let mut uses_stable = false;
        for path in rule.http.iter_mut().flat_map(|h| h.paths.iter_mut()) {
            if let Some(service) = path.backend.service.as_mut()
                && service.name == params.stable_service
            {
                service.name = params.canary_service.to_string();
                uses_stable = true;
            }
        }
        if uses_stable {
            rules.push(rule);
        }
    }
    if rules.is_empty() {
        return Err(TrafficError::new(
            ObjectKind::Ingress,
            stable_name,
            Problem::NoRulesForService(params.stable_service.to_string()),
        ));
    }

    let mut annotations = BTreeMap::new();
    if let Some(class) = stable
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INGRESS_CLASS_ANNOTATION))
    {
        annotations.insert(INGRESS_CLASS_ANNOTATION.to_string(), class.clone());
    }
    for (key, value) in params.nginx.additional_ingress_annotations.iter().flatten() {
        let key = if key.starts_with(prefix) {
            key.clone()
        } else {
            format!("{prefix}/{key}")
        };
        annotations.insert(key, value.clone());
    }
    for (key, value) in params.nginx.canary_ingress_annotations.iter().flatten() {
        annotations.insert(key.clone(), value.clone());
    }
    annotations.insert(format!("{prefix}/canary"), "true".to_string());
    annotations.insert(format!("{prefix}/canary-weight"), params.weight.to_string());
    if let Some(total) = params.max_traffic_weight {
        annotations.insert(format!("{prefix}/canary-weight-total"), total.to_string());
    }

    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(canary_ingress_name(params.rollout_name, stable_name)),
            namespace: stable.metadata.namespace.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: "Rollout".into(),
                name: params.rollout_name.to_string(),
                uid: params.rollout_uid.to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: stable_spec.and_then(|s| s.ingress_class_name.clone()),
            rules: Some(rules),
            tls: stable_spec.and_then(|s| s.tls.clone()),
            default_backend: None,
        }),
        status: None,
    })
}

/// Brings an existing canary Ingress to `desired` (from [`canary_ingress`]) and returns the
/// object to write, or `None` when nothing changes. The spec is replaced; annotations are
/// merged: the desired ones are set, stale ones under `<annotation_prefix>/` (which only the
/// controller writes on a canary Ingress) are removed, and any other annotation (added by
/// users or other tools) is kept, as are labels and other metadata.
///
/// Fails when the Ingress is not controlled by the Rollout `rollout_uid`: the name might clash
/// with an Ingress someone else owns, which must not be taken over.
pub fn update_canary_ingress(
    existing: &Ingress,
    desired: &Ingress,
    rollout_uid: &str,
    annotation_prefix: &str,
) -> Result<Option<Ingress>, TrafficError> {
    if !shared_types::object_meta::is_owned_by(&existing.metadata, rollout_uid) {
        return Err(TrafficError::new(
            ObjectKind::Ingress,
            existing.metadata.name.as_deref().unwrap_or_default(),
            Problem::ControlledByOther,
        ));
    }
    let desired_annotations = desired.metadata.annotations.clone().unwrap_or_default();
    let ours = format!("{annotation_prefix}/");
    let mut annotations = existing.metadata.annotations.clone().unwrap_or_default();
    annotations.retain(|k, _| !k.starts_with(&ours) || desired_annotations.contains_key(k));
    annotations.extend(desired_annotations);

    let mut updated = existing.clone();
    updated.metadata.annotations = Some(annotations);
    updated.spec = desired.spec.clone();
    Ok((updated != *existing).then_some(updated))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, IngressBackend, IngressRule, IngressServiceBackend,
        IngressTLS, ServiceBackendPort,
    };
    use serde_json::json;

    use super::*;

    fn stable_ingress() -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "primary",
                "namespace": "shop",
                "annotations": {
                    "kubernetes.io/ingress.class": "nginx",
                    "nginx.ingress.kubernetes.io/rewrite-target": "/",
                    "example.com/team": "payments",
                },
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{ "hosts": ["shop.example.com"], "secretName": "shop-tls" }],
                "defaultBackend": { "service": { "name": "fallback", "port": { "number": 80 } } },
                "rules": [
                    {
                        "host": "shop.example.com",
                        "http": { "paths": [
                            { "path": "/", "pathType": "Prefix",
                              "backend": { "service": { "name": "shop-stable", "port": { "number": 80 } } } },
                            { "path": "/static", "pathType": "Prefix",
                              "backend": { "service": { "name": "static", "port": { "name": "http" } } } },
                        ] },
                    },
                    {
                        "host": "admin.example.com",
                        "http": { "paths": [
                            { "path": "/", "pathType": "Prefix",
                              "backend": { "service": { "name": "admin", "port": { "number": 80 } } } },
                        ] },
                    },
                ],
            },
        }))
        .unwrap()
    }

    fn nginx() -> NginxTrafficRouting {
        NginxTrafficRouting {
            stable_ingress: Some("primary".into()),
            additional_ingress_annotations: Some(BTreeMap::from([
                ("canary-by-header".to_string(), "X-Canary".to_string()),
                (
                    "nginx.ingress.kubernetes.io/canary-by-header-value".to_string(),
                    "yes".to_string(),
                ),
            ])),
            canary_ingress_annotations: Some(BTreeMap::from([(
                "example.com/owner".to_string(),
                "rollouts".to_string(),
            )])),
            ..Default::default()
        }
    }

    fn params(nginx: &NginxTrafficRouting, weight: i32) -> CanaryIngressParams<'_> {
        CanaryIngressParams {
            rollout_name: "shop",
            rollout_uid: "uid-1",
            nginx,
            max_traffic_weight: None,
            canary_service: "shop-canary",
            stable_service: "shop-stable",
            weight,
        }
    }

    #[test]
    fn name_and_trimming() {
        assert_eq!(canary_ingress_name("shop", "primary"), "shop-primary-canary");
        let long = "r".repeat(200);
        let name = canary_ingress_name(&long, &"i".repeat(100));
        assert_eq!(name.len(), 253);
        assert!(name.ends_with("i-canary"));
        assert!(name.starts_with(&long));
        let exact = canary_ingress_name(&"a".repeat(100), &"b".repeat(145));
        assert_eq!(exact.len(), 253);
    }

    #[test]
    fn canary_ingress_contents() {
        let nginx = nginx();
        let canary = canary_ingress(&stable_ingress(), &params(&nginx, 20)).unwrap();
        let expected: Ingress = serde_json::from_value(json!({
            "metadata": {
                "name": "shop-primary-canary",
                "namespace": "shop",
                "annotations": {
                    "kubernetes.io/ingress.class": "nginx",
                    "nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "20",
                    "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
                    "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
                    "example.com/owner": "rollouts",
                },
                "ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": "shop",
                    "uid": "uid-1",
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{ "hosts": ["shop.example.com"], "secretName": "shop-tls" }],
                "rules": [{
                    "host": "shop.example.com",
                    "http": { "paths": [
                        { "path": "/", "pathType": "Prefix",
                          "backend": { "service": { "name": "shop-canary", "port": { "number": 80 } } } },
                        { "path": "/static", "pathType": "Prefix",
                          "backend": { "service": { "name": "static", "port": { "name": "http" } } } },
                    ] },
                }],
            },
        }))
        .unwrap();
        assert_eq!(canary, expected);
    }

    #[test]
    fn custom_prefix_and_weight_total() {
        let nginx = NginxTrafficRouting {
            annotation_prefix: Some("custom.nginx.io".into()),
            additional_ingress_annotations: Some(BTreeMap::from([(
                "canary-by-cookie".to_string(),
                "beta".to_string(),
            )])),
            ..Default::default()
        };
        let p = CanaryIngressParams {
            max_traffic_weight: Some(1000),
            ..params(&nginx, 250)
        };
        let canary = canary_ingress(&stable_ingress(), &p).unwrap();
        let annotations = canary.metadata.annotations.unwrap();
        assert_eq!(
            annotations,
            BTreeMap::from([
                ("kubernetes.io/ingress.class".to_string(), "nginx".to_string()),
                ("custom.nginx.io/canary".to_string(), "true".to_string()),
                ("custom.nginx.io/canary-weight".to_string(), "250".to_string()),
                (
                    "custom.nginx.io/canary-weight-total".to_string(),
                    "1000".to_string()
                ),
                ("custom.nginx.io/canary-by-cookie".to_string(), "beta".to_string()),
            ])
        );
    }

    #[test]
    fn controller_annotations_win() {
        let nginx = NginxTrafficRouting {
            additional_ingress_annotations: Some(BTreeMap::from([(
                "canary-weight".to_string(),
                "99".to_string(),
            )])),
            ..Default::default()
        };
        let canary = canary_ingress(&stable_ingress(), &params(&nginx, 5)).unwrap();
        let annotations = canary.metadata.annotations.unwrap();
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "5");
    }

    #[test]
    fn stable_ingress_without_the_stable_service() {
        let nginx = nginx();
        let p = CanaryIngressParams {
            stable_service: "nope",
            ..params(&nginx, 20)
        };
        let err = canary_ingress(&stable_ingress(), &p).unwrap_err();
        assert_eq!(err.problem, Problem::NoRulesForService("nope".into()));
        assert_eq!(
            err.to_string(),
            "Ingress `primary`: no rules using service nope backend"
        );
        // No rules at all.
        let empty = Ingress {
            metadata: ObjectMeta {
                name: Some("bare".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(canary_ingress(&empty, &params(&nginx, 20)).is_err());
    }

    #[test]
    fn every_stable_path_is_redirected() {
        let backend = |svc: &str| IngressBackend {
            service: Some(IngressServiceBackend {
                name: svc.into(),
                port: Some(ServiceBackendPort {
                    number: Some(8080),
                    name: None,
                }),
            }),
            resource: None,
        };
        let path = |p: &str, svc: &str| HTTPIngressPath {
            path: Some(p.into()),
            path_type: "Exact".into(),
            backend: backend(svc),
        };
        let stable = Ingress {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: None,
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![path("/a", "shop-stable"), path("/b", "shop-stable")],
                    }),
                }]),
                tls: Some(vec![IngressTLS::default()]),
                ..Default::default()
            }),
            status: None,
        };
        let canary = canary_ingress(&stable, &params(&nginx(), 0)).unwrap();
        let spec = canary.spec.unwrap();
        let rules = spec.rules.clone().unwrap();
        let paths = &rules[0].http.as_ref().unwrap().paths;
        assert!(
            paths
                .iter()
                .all(|p| p.backend.service.as_ref().unwrap().name == "shop-canary")
        );
        assert_eq!(spec.ingress_class_name, None);
        assert_eq!(spec.tls.map(|t| t.len()), Some(1));
        assert_eq!(canary.metadata.name.as_deref(), Some("shop-web-canary"));
        assert_eq!(
            canary.metadata.annotations.unwrap()["nginx.ingress.kubernetes.io/canary-weight"],
            "0"
        );
    }

    #[test]
    fn update_keeps_foreign_annotations_and_drops_stale_ones() {
        let nginx = nginx();
        let desired = canary_ingress(&stable_ingress(), &params(&nginx, 40)).unwrap();
        let mut existing = canary_ingress(&stable_ingress(), &params(&nginx, 20)).unwrap();
        let annotations = existing.metadata.annotations.as_mut().unwrap();
        annotations.insert("example.com/added-by-user".into(), "keep".into());
        annotations.insert(
            "nginx.ingress.kubernetes.io/canary-by-cookie".into(),
            "stale".into(),
        );
        existing.metadata.labels = Some(BTreeMap::from([("app".to_string(), "shop".to_string())]));
        existing.metadata.resource_version = Some("7".into());

        let updated = update_canary_ingress(&existing, &desired, "uid-1", nginx.annotation_prefix())
            .unwrap()
            .unwrap();
        let annotations = updated.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "40");
        assert_eq!(annotations["example.com/added-by-user"], "keep");
        assert!(!annotations.contains_key("nginx.ingress.kubernetes.io/canary-by-cookie"));
        assert_eq!(updated.metadata.labels, existing.metadata.labels);
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(updated.spec, desired.spec);

        // Already up to date: nothing to write.
        assert_eq!(
            update_canary_ingress(&updated, &desired, "uid-1", nginx.annotation_prefix()).unwrap(),
            None
        );
    }

    #[test]
    fn update_refuses_an_ingress_owned_by_someone_else() {
        let nginx = nginx();
        let desired = canary_ingress(&stable_ingress(), &params(&nginx, 40)).unwrap();
        let err = update_canary_ingress(&desired, &desired, "other-uid", "nginx.ingress.kubernetes.io")
            .unwrap_err();
        assert_eq!(err.problem, Problem::ControlledByOther);
        assert_eq!(err.name, "shop-primary-canary");
        let mut unowned = desired.clone();
        unowned.metadata.owner_references = None;
        assert!(update_canary_ingress(&unowned, &desired, "uid-1", "nginx.ingress.kubernetes.io").is_err());
    }
}
