//! Logging set-up with `tracing`: text or JSON lines on stderr, filtered by level.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{Error, flags::LogFormat};

/// Installs the global subscriber. `level` is a level name or any `EnvFilter` directive; noisy
/// dependency crates are kept at `warn` unless the directive names them.
pub fn init(level: &str, format: LogFormat) -> Result<(), Error> {
    let directive = match level {
        "debug" | "info" | "warn" | "error" | "trace" => format!("{level},hyper=warn,tower=warn,rustls=warn"),
        other => other.to_string(),
    };
    let filter = EnvFilter::try_new(&directive).map_err(|e| Error::LogLevel {
        level: level.to_string(),
        message: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is not an error worth failing on.
    let _ = result;
    Ok(())
}
