//! JSON merge patches (RFC 7386): the patch that turns one value into another, so a controller
//! writes only what changed in a status (and removes what is gone with `null`).

use serde_json::Value;

/// The RFC 7386 merge patch turning `old` into `new`, or None when they are equal.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = diff(ov, nv) {
                            patch.insert(k.clone(), d);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7386: what the API server does with a JSON merge patch.
    fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
        match patch {
            Value::Object(p) => {
                let mut out = match target {
                    Value::Object(t) => t.clone(),
                    _ => serde_json::Map::new(),
                };
                for (k, v) in p {
                    if v.is_null() {
                        out.remove(k);
                    } else {
                        let merged = apply_merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                        out.insert(k.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// A small deterministic generator of status-like JSON (objects nest, no nulls: a status
    /// never holds null, and merge patches cannot express one).
    struct Gen(u64);
    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
        fn value(&mut self, depth: u32) -> Value {
            match self.next(if depth == 0 { 4 } else { 6 }) {
                0 => json!(self.next(3) == 0),
                1 => json!(self.next(5)),
                2 => json!(["a", "b", "c"][usize::try_from(self.next(3)).unwrap_or(0)]),
                3 => Value::Array((0..self.next(3)).map(|_| json!(self.next(4))).collect()),
                _ => {
                    let keys = ["abort", "phase", "canary", "weights", "stableRS", "conditions"];
                    let mut map = serde_json::Map::new();
                    for _ in 0..self.next(4) {
                        let k = keys[usize::try_from(self.next(6)).unwrap_or(0)];
                        map.insert(k.into(), self.value(depth - 1));
                    }
                    Value::Object(map)
                }
            }
        }
    }

    #[test]
    fn the_diff_applied_to_the_old_status_gives_the_new_one() {
        let mut g = Gen(7);
        for case in 0..5000 {
            let old = Value::Object(g.value(3).as_object().cloned().unwrap_or_default());
            let new = Value::Object(g.value(3).as_object().cloned().unwrap_or_default());
            match diff(&old, &new) {
                Some(patch) => assert_eq!(
                    apply_merge_patch(&old, &patch),
                    new,
                    "case {case}: {old} -> {new} via {patch}"
                ),
                None => assert_eq!(old, new, "case {case}: no patch for a change"),
            }
        }
    }

    #[test]
    fn the_diff_sets_changes_and_nulls_removals() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 5}, "e": [1, 2], "f": true});
        assert_eq!(
            diff(&old, &new),
            Some(json!({"b": {"c": 5, "d": null}, "e": [1, 2], "f": true}))
        );
        assert_eq!(diff(&old, &old), None);
    }
}
