//! A validation error that names the offending field.
//!
//! Validators in this crate collect every problem they find as a [`FieldError`] instead of stopping
//! at the first one. They report problems in the order Argo Rollouts checks them, so the first
//! element of the returned list is the error Argo would have reported.

use std::fmt;

/// One problem found while validating a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.metrics[0].count`.
    pub path: String,
    /// What is wrong with it (Argo's wording where Argo has one).
    pub message: String,
}

impl FieldError {
    /// Builds an error for `path` with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Joins several errors into one line (`<path>: <message>; <path>: <message>`), for conditions and
/// events that carry a single message.
pub fn join_field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_colon_message() {
        let err = FieldError::new("spec.metrics[0].count", "count must be >= failureLimit");
        assert_eq!(
            err.to_string(),
            "spec.metrics[0].count: count must be >= failureLimit"
        );
    }

    #[test]
    fn join_uses_semicolons() {
        let errs = vec![FieldError::new("a", "x"), FieldError::new("b", "y")];
        assert_eq!(join_field_errors(&errs), "a: x; b: y");
        assert_eq!(join_field_errors(&[]), "");
    }
}
