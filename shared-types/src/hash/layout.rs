//! Types describing Go struct layouts, as emitted by `tools/gohash` into `go_layout.rs`.
//!
//! Go's `encoding/json` writes struct fields in declaration order and decides per field (from
//! its Go type and `json` tag) whether a missing value is omitted, written as `null`, or written
//! as the Go zero value. The Rust k8s-openapi types do not carry that information, so it is
//! extracted once from the real Go types by reflection and kept here as data.

/// The Go type of a field, as far as it matters to `encoding/json`.
#[derive(Debug, Clone, Copy)]
pub enum GoKind {
    /// A `string` (or a named string type such as `corev1.Protocol`). Zero value `""`.
    String,
    /// A signed integer of any width. Zero value `0`.
    Int,
    /// An unsigned integer of any width. Zero value `0`.
    Uint,
    /// A `bool`. Zero value `false`.
    Bool,
    /// A non-pointer struct: always written (Go's `omitempty` never omits a struct).
    Struct(&'static GoStruct),
    /// A pointer: `nil` is written as `null`, or omitted with `omitempty`.
    Ptr(&'static GoKind),
    /// A slice: `nil` is written as `null`; omitted with `omitempty` when empty.
    Slice(&'static GoKind),
    /// A `[]byte`: a base64 string, `nil` written as `null`.
    Bytes,
    /// A map with string keys: keys sorted byte-wise, `nil` written as `null`.
    Map(&'static GoKind),
    /// `resource.Quantity`: a struct with a `MarshalJSON` writing the canonical string.
    Quantity,
    /// `intstr.IntOrString`: a bare number or a string.
    IntOrString,
    /// `metav1.Time`: RFC 3339 in UTC with second precision, the zero time as `null`.
    Time,
    /// `metav1.FieldsV1`: raw JSON passed through (compacted, HTML-escaped).
    RawJson,
}

/// One JSON-visible field of a Go struct (after flattening embedded structs).
#[derive(Debug, Clone, Copy)]
pub struct GoField {
    /// The JSON name from the `json` tag.
    pub name: &'static str,
    /// The tag has `omitempty`.
    pub omit_empty: bool,
    /// The tag has `omitzero` (only honoured by Go >= 1.24, see `go_json.rs`).
    pub omit_zero: bool,
    /// The Go type.
    pub kind: GoKind,
}

impl GoField {
    /// A field with neither `omitempty` nor `omitzero`.
    pub const fn new(name: &'static str, kind: GoKind) -> Self {
        Self {
            name,
            omit_empty: false,
            omit_zero: false,
            kind,
        }
    }

    /// Marks the field `omitempty`.
    pub const fn omitempty(mut self) -> Self {
        self.omit_empty = true;
        self
    }

    /// Marks the field `omitzero`.
    pub const fn omitzero(mut self) -> Self {
        self.omit_zero = true;
        self
    }
}

/// A Go struct type: its name (for diagnostics and special cases) and JSON fields in order.
#[derive(Debug)]
pub struct GoStruct {
    /// The Go type name without package, e.g. `PodSpec`.
    pub name: &'static str,
    /// The JSON fields in Go declaration order.
    pub fields: &'static [GoField],
}
