//! A JSON writer producing the exact bytes of Go's `encoding/json.Marshal`.
//!
//! Two entry points:
//! - [`write_go_json_value`] writes any `serde_json::Value` with Go's string escaping and number
//!   formatting, keeping object keys in the order the value holds them (the caller is
//!   responsible for putting them in Go struct order);
//! - [`write_go_struct`] writes a value as a given Go struct type would marshal it after being
//!   decoded from that JSON: fields in Go order, unknown fields dropped, `omitempty` applied, Go
//!   zero values written for missing non-omitempty fields, map keys sorted and custom marshalers
//!   (`resource.Quantity`, `intstr.IntOrString`, `metav1.Time`) reproduced.

use serde_json::{Map, Number, Value};

use super::layout::{GoKind, GoStruct};
use super::quantity::canonical_quantity;

/// Appends `s` as a JSON string escaped like Go's `encoding/json` with HTML escaping on (the
/// default of `json.Marshal`): `<`, `>`, `&`, U+2028 and U+2029 become `\u` escapes, control
/// characters use `\b \f \n \r \t` where Go (>= 1.22) has a short form and `\u00XX` otherwise.
pub fn write_go_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\u{8}' => Some(b"\\b"),
            '\u{c}' => Some(b"\\f"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => None,
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a JSON number formatted like Go formats the corresponding Go value: integers in
/// decimal, floats like `float64` (shortest round-trip digits, exponent form below 1e-6 and from
/// 1e21 on, as in `1e+21` and `1e-7`).
pub fn write_go_json_number(out: &mut Vec<u8>, n: &Number) {
    if n.is_i64() || n.is_u64() {
        out.extend_from_slice(n.to_string().as_bytes());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        // Rust's Display is the shortest round-trip representation without exponent, like
        // Go's strconv.FormatFloat(f, 'f', -1, 64); integral values print without ".0".
        out.extend_from_slice(format!("{f}").as_bytes());
    } else {
        // Go uses 'e' format with at least two exponent digits and then shortens "e-07" to
        // "e-7"; positive exponents here are >= 21, so they always have two digits and a '+'.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                out.extend_from_slice(format!("{mantissa}e+{exp}").as_bytes());
            }
            _ => out.extend_from_slice(s.as_bytes()),
        }
    }
}

/// Appends `value` as Go's `encoding/json` would write the same data held in Go maps, slices and
/// scalars, except that object keys keep the order `value` holds them in (so the caller can
/// reproduce Go struct field order). Strings use Go escaping, see [`write_go_json_string`].
pub fn write_go_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_go_json_number(out, n),
        Value::String(s) => write_go_json_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_go_json_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_go_json_string(out, k);
                out.push(b':');
                write_go_json_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Fields whose Go slice has no `omitempty` but whose k8s-openapi type is a required `Vec`:
/// a typed template cannot tell "absent" (Go: nil, written `null`) from "empty" (Go: `[]`), as
/// k8s-openapi serializes both as `[]`. An empty list there comes from an absent field in practice
/// (the API server rejects empty `containers`/`nodeSelectorTerms`/`monitors` on real pods), so
/// for typed input it is written as `null`, matching Go for JSON that lacked the field.
const EMPTY_MEANS_NIL: &[(&str, &str)] = &[
    ("PodSpec", "containers"),
    ("NodeSelector", "nodeSelectorTerms"),
    ("CephFSVolumeSource", "monitors"),
    ("RBDVolumeSource", "monitors"),
];

/// How the input JSON was produced, which changes what it can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Raw JSON as stored (e.g. from the API server): an empty list is an empty list.
    Raw,
    /// Serialized from k8s-openapi types: see [`EMPTY_MEANS_NIL`].
    K8sOpenapi,
}

/// Appends the Go JSON of Go struct type `ty` holding the data in `value` (a JSON object;
/// anything else is the Go zero value of the struct), as `json.Marshal` would write it after
/// `json.Unmarshal` of that object.
pub fn write_go_struct(out: &mut Vec<u8>, ty: &GoStruct, value: Option<&Value>) {
    write_struct(out, ty, value, Source::Raw);
}

pub(crate) fn write_struct(out: &mut Vec<u8>, ty: &GoStruct, value: Option<&Value>, src: Source) {
    let obj = value.and_then(Value::as_object);
    out.push(b'{');
    let mut first = true;
    for field in ty.fields {
        let mut v = present(obj, field.name);
        if src == Source::K8sOpenapi
            && EMPTY_MEANS_NIL.contains(&(ty.name, field.name))
            && v.and_then(Value::as_array).is_some_and(Vec::is_empty)
        {
            v = None;
        }
        // `omitzero` is deliberately ignored: Argo Rollouts <= v1.8 is built against
        // apimachinery without the tag (ObjectMeta.creationTimestamp), so its hashes include
        // `"creationTimestamp":null`; the seed hashes from a real cluster confirm it.
        if field.omit_empty && is_empty(field.kind, v) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_go_json_string(out, field.name);
        out.push(b':');
        write_kind(out, field.kind, v, src);
    }
    out.push(b'}');
}

/// The field's value, with JSON `null` treated as absent: Go decoding `null` leaves the field at
/// its zero value (nil for pointers, slices and maps).
fn present<'a>(obj: Option<&'a Map<String, Value>>, name: &str) -> Option<&'a Value> {
    obj.and_then(|o| o.get(name)).filter(|v| !v.is_null())
}

/// Go's `isEmptyValue` for `omitempty`, applied to the value Go would hold after decoding `v`.
fn is_empty(kind: GoKind, v: Option<&Value>) -> bool {
    match kind {
        GoKind::String => v.and_then(Value::as_str).is_none_or(str::is_empty),
        GoKind::Int | GoKind::Uint => v.and_then(Value::as_f64).is_none_or(|n| n == 0.0),
        GoKind::Bool => v.and_then(Value::as_bool).is_none_or(|b| !b),
        GoKind::Ptr(_) => v.is_none(),
        GoKind::Slice(_) => v.and_then(Value::as_array).is_none_or(Vec::is_empty),
        GoKind::Bytes => v.and_then(Value::as_str).is_none_or(str::is_empty),
        GoKind::Map(_) => v.and_then(Value::as_object).is_none_or(Map::is_empty),
        // Structs (including the custom-marshalled ones) are never empty for encoding/json.
        GoKind::Struct(_) | GoKind::Quantity | GoKind::IntOrString | GoKind::Time | GoKind::RawJson => false,
    }
}

/// Appends the Go JSON of a value of Go type `kind`; `None` is the Go zero value.
fn write_kind(out: &mut Vec<u8>, kind: GoKind, v: Option<&Value>, src: Source) {
    let v = v.filter(|v| !v.is_null());
    match kind {
        GoKind::String => write_go_json_string(out, v.and_then(Value::as_str).unwrap_or("")),
        GoKind::Int | GoKind::Uint => match v {
            // k8s-openapi holds integers as i32/i64; a float would have failed Go decoding.
            Some(Value::Number(n)) => write_go_json_number(out, n),
            _ => out.push(b'0'),
        },
        GoKind::Bool => {
            let b = v.and_then(Value::as_bool).unwrap_or(false);
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        GoKind::Struct(ty) => write_struct(out, ty, v, src),
        GoKind::Ptr(inner) => match v {
            Some(v) => write_kind(out, *inner, Some(v), src),
            None => out.extend_from_slice(b"null"),
        },
        GoKind::Slice(inner) => match v.and_then(Value::as_array) {
            Some(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_kind(out, *inner, Some(item), src);
                }
                out.push(b']');
            }
            None => out.extend_from_slice(b"null"),
        },
        // Go decodes base64 into []byte and re-encodes it as standard padded base64, which is
        // the form the API server stores; passed through.
        GoKind::Bytes => match v.and_then(Value::as_str) {
            Some(s) => write_go_json_string(out, s),
            None => out.extend_from_slice(b"null"),
        },
        GoKind::Map(inner) => match v.and_then(Value::as_object) {
            Some(map) => {
                // Go sorts map keys by their bytes; Rust's `str` ordering is the same.
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_go_json_string(out, k);
                    out.push(b':');
                    write_kind(out, *inner, map.get(k.as_str()), src);
                }
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        },
        GoKind::Quantity => write_quantity(out, v),
        GoKind::IntOrString => match v {
            Some(Value::String(s)) => write_go_json_string(out, s),
            Some(Value::Number(n)) => write_go_json_number(out, n),
            _ => out.push(b'0'),
        },
        GoKind::Time => match v.and_then(Value::as_str) {
            Some(s) => write_go_json_string(out, &go_time(s)),
            // The zero time.
            None => out.extend_from_slice(b"null"),
        },
        // metav1.FieldsV1 passes its raw bytes through; here the key order is serde_json's.
        GoKind::RawJson => match v {
            Some(v) => write_go_json_value(out, v),
            None => out.extend_from_slice(b"null"),
        },
    }
}

/// metav1.Time reads any RFC 3339 time and writes it in UTC with whole seconds. k8s-openapi's
/// `Time` does the same round trip, so typed templates are already normalised; untyped input is
/// passed through it. A string neither accepts is kept (Go would have refused the object).
fn go_time(s: &str) -> String {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    serde_json::from_value::<Time>(Value::String(s.to_string()))
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| s.to_string())
}

/// `resource.Quantity.MarshalJSON`: the canonical form (zero value `"0"`). JSON numbers are
/// accepted like Go does (it parses the literal text). An unparsable string, which Go would
/// have refused to decode at all, is written as given.
fn write_quantity(out: &mut Vec<u8>, v: Option<&Value>) {
    let text = match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    };
    let canonical = canonical_quantity(&text).unwrap_or(text);
    write_go_json_string(out, &canonical);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        write_go_json_string(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(string("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(string("q\"b\\"), r#""q\"b\\""#);
        assert_eq!(
            string("\n\r\t\u{8}\u{c}\u{1}\u{1f}"),
            r#""\n\r\t\b\f\u0001\u001f""#
        );
        assert_eq!(string("\u{2028}\u{2029}é\u{7f}"), "\"\\u2028\\u2029é\u{7f}\"");
    }

    #[test]
    fn floats_like_go() {
        let f = |x: f64| {
            let mut out = Vec::new();
            write_go_json_number(&mut out, &Number::from_f64(x).unwrap_or_else(|| Number::from(0)));
            String::from_utf8(out).unwrap_or_default()
        };
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(1.5e-7), "1.5e-7");
        assert_eq!(f(123456789.0), "123456789");
    }
}
