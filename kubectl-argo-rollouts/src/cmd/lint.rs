//! `lint -f FILE`: checks the Argo Rollouts objects of a manifest file offline.

use std::{io::Write, path::Path};

use shared_types::field_error::FieldError;

use crate::{
    error::Error,
    manifest::{Kind, lint_document, read_documents},
};

/// One problem and the object it was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintError {
    /// `<Kind> "<name>"`.
    pub object: String,
    /// The problem, naming its field.
    pub error: FieldError,
}

impl std::fmt::Display for LintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.error)
    }
}

/// Lints every document of the file at `path`.
pub fn lint_file(path: &Path) -> Result<Vec<LintError>, Error> {
    let mut errors = Vec::new();
    for doc in read_documents(path)? {
        let Some(kind) = Kind::of(&doc) else { continue };
        let object = format!(
            "{} \"{}\"",
            kind.name(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        errors.extend(lint_document(&doc).into_iter().map(|error| LintError {
            object: object.clone(),
            error,
        }));
    }
    Ok(errors)
}

/// Prints every problem on standard output (like Argo) and fails with the first one.
pub fn run(path: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let errors = lint_file(path)?;
    for e in &errors {
        writeln!(out, "{e}")?;
    }
    match errors.as_slice() {
        [] => Ok(()),
        [only] => Err(Error::msg(only.to_string())),
        [first, rest @ ..] => Err(Error::msg(format!("{first} (and {} more)", rest.len()))),
    }
}
