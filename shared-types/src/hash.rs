//! The pod-template hash (`rollouts-pod-template-hash`), byte-identical to Argo Rollouts'
//! `hash.ComputePodTemplateHash`, and the primitives it is built from.
//!
//! Argo computes FNV-1a (32 bit) over the Go `encoding/json` bytes of the `corev1.PodTemplateSpec`,
//! optionally followed by the collision count, prints the sum in decimal and maps every digit
//! through `rand.SafeEncodeString`. Matching it means reproducing Go's JSON exactly, which the
//! k8s-openapi types do not do by themselves (different field order, no Go zero values, no
//! quantity canonicalisation). The Go field layout is therefore generated from the real Go types
//! by `tools/gohash` (into `hash/go_layout.rs`, see [`pod_template_layout`]) and the JSON is
//! re-emitted from it.
//!
//! Compatibility notes: the hashes of Argo Rollouts up to v1.8 are matched (confirmed against
//! hashes from a real cluster), whose k8s libraries lack `omitzero` on
//! `ObjectMeta.creationTimestamp`, so `"creationTimestamp":null` is always written. Builds with
//! newer libraries omit it and hash differently (`gohash -omitzero` shows those; compare upstream
//! argo-rollouts#4696 about v1.9.0). Strings are escaped as Go >= 1.22 does (`\b`, `\f`).
//!
//! The steps hash (`status.currentStepHash`) uses the same encoding over the Go JSON of the canary
//! steps: serialize them in Go field order, write them with [`write_go_json_value`] and hash the
//! bytes with [`go_json_hash`].

mod go_json;
mod go_layout;
mod layout;
mod quantity;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

pub use go_json::{write_go_json_number, write_go_json_string, write_go_json_value, write_go_struct};
pub use layout::{GoField, GoKind, GoStruct};
pub use quantity::canonical_quantity;

/// The Go layout of `corev1.PodTemplateSpec` (and everything reachable from it) the encoder uses.
pub fn pod_template_layout() -> &'static GoStruct {
    go_layout::ROOT
}

/// FNV-1a, 32 bit (Go's `hash/fnv.New32a`).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h = Fnv1a32::new();
    h.write(bytes);
    h.sum()
}

/// An incremental FNV-1a 32-bit hasher, for hashing data written in several pieces.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a32(u32);

impl Fnv1a32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    /// A hasher in its initial state.
    pub fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Feeds bytes into the hash.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The current sum.
    pub fn sum(&self) -> u32 {
        self.0
    }
}

impl Default for Fnv1a32 {
    fn default() -> Self {
        Self::new()
    }
}

/// k8s `rand.SafeEncodeString`: each character is replaced by `ALPHABET[rune % 27]`, an
/// alphabet without vowels and look-alike digits so hashes never spell words. For the decimal
/// digits this gives 0→4 1→5 2→6 3→7 4→8 5→9 6→b 7→c 8→d 9→f.
pub fn safe_encode_string(s: &str) -> String {
    const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| char::from(ALPHABET[(c as usize) % ALPHABET.len()]))
        .collect()
}

/// FNV-1a over `bytes`, then (if a collision count is given) the count as a little-endian `u32`
/// in an 8-byte zero-padded buffer, then the decimal sum safe-encoded: the tail of Argo's
/// `ComputePodTemplateHash`.
pub fn safe_encode_fnv(bytes: &[u8], collision_count: Option<i32>) -> String {
    let mut h = Fnv1a32::new();
    h.write(bytes);
    if let Some(count) = collision_count {
        // Go converts the *int32 with uint32(...), i.e. keeps the two's complement bits.
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&count.to_le_bytes());
        h.write(&buf);
    }
    safe_encode_string(&h.sum().to_string())
}

/// The safe-encoded FNV-1a hash of bytes that are already Go JSON (no collision count), e.g.
/// the canary steps for `status.currentStepHash`.
pub fn go_json_hash(bytes: &[u8]) -> String {
    safe_encode_fnv(bytes, None)
}

/// The exact bytes Go's `json.Marshal` writes for `template` after decoding it from the JSON
/// k8s-openapi produces (see the module docs for what that involves).
pub fn go_json_pod_template(template: &PodTemplateSpec) -> Vec<u8> {
    // Serializing k8s-openapi types only fails for timestamps jiff cannot format, which the API
    // server would never have stored; such a template is hashed as the empty template.
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut out = Vec::with_capacity(512);
    go_json::write_struct(
        &mut out,
        go_layout::ROOT,
        Some(&value),
        go_json::Source::K8sOpenapi,
    );
    out
}

/// Like [`go_json_pod_template`] but from the JSON of a `PodTemplateSpec` as stored (for callers
/// holding the template untyped). Fields Go does not know are dropped; unlike the typed variant
/// an empty `containers` list stays `[]`, as Go keeps it.
pub fn go_json_pod_template_value(template: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    go_json::write_struct(&mut out, go_layout::ROOT, Some(template), go_json::Source::Raw);
    out
}

/// Every `resource.Quantity` in a pod template (requests, limits, overhead, `sizeLimit`, ...)
/// whose text Go cannot parse, as `(JSON path below the template, text)`, e.g.
/// `("spec.containers[0].resources.limits.memory", "invalid")`. Go would refuse to decode
/// such a template at all, so there is no hash to match; callers report the field instead.
pub fn invalid_quantities(template: &PodTemplateSpec) -> Vec<(String, String)> {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut found = Vec::new();
    let mut path = String::new();
    visit_quantities(
        GoKind::Struct(go_layout::ROOT),
        Some(&value),
        &mut path,
        &mut |path, text| {
            if canonical_quantity(text).is_none() {
                found.push((path.to_string(), text.to_string()));
            }
        },
    );
    found
}

/// Walks `value` as Go type `kind` and calls `visit` with the path and text of each Quantity.
fn visit_quantities(
    kind: GoKind,
    value: Option<&Value>,
    path: &mut String,
    visit: &mut dyn FnMut(&str, &str),
) {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return;
    };
    let len = path.len();
    match kind {
        GoKind::Quantity => {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            visit(path, &text);
        }
        GoKind::Ptr(inner) => visit_quantities(*inner, Some(value), path, visit),
        GoKind::Struct(ty) => {
            for field in ty.fields {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(field.name);
                visit_quantities(field.kind, value.get(field.name), path, visit);
                path.truncate(len);
            }
        }
        GoKind::Slice(inner) => {
            for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                path.push_str(&format!("[{i}]"));
                visit_quantities(*inner, Some(item), path, visit);
                path.truncate(len);
            }
        }
        GoKind::Map(inner) => {
            for (k, item) in value.as_object().into_iter().flatten() {
                path.push('.');
                path.push_str(k);
                visit_quantities(*inner, Some(item), path, visit);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The Argo Rollouts pod-template hash of `template` with the Rollout's
/// `status.collisionCount`, e.g. `6579c6cc98`.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    safe_encode_fnv(&go_json_pod_template(template), collision_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Reference values of the FNV-1a 32 specification.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_digits() {
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
    }

    #[test]
    fn invalid_quantities_are_named_by_path() {
        let template: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": 1, "memory": "1Gi"}}},
                    {"name": "b", "resources": {"limits": {"memory": "invalid"}}}
                ],
                "overhead": {"cpu": "lots"},
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Mi5"}}]
            }
        }))
        .unwrap();
        let mut found = invalid_quantities(&template);
        found.sort();
        assert_eq!(
            found,
            vec![
                (
                    "spec.containers[1].resources.limits.memory".to_string(),
                    "invalid".to_string()
                ),
                ("spec.overhead.cpu".to_string(), "lots".to_string()),
                (
                    "spec.volumes[0].emptyDir.sizeLimit".to_string(),
                    "1Mi5".to_string()
                ),
            ]
        );
    }
}
