//! The outbound HTTP client every controller shares (metric providers, notification services):
//! TLS through rustls with ring, as kube uses it, and one-line error descriptions.

use std::{error::Error as _, sync::OnceLock, time::Duration};

/// Connect timeout of the shared clients (every request also sets its own total timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs ring as the process's rustls crypto provider, once (a provider installed earlier by
/// someone else is kept).
pub fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Err means a provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The shared client: one verifying TLS certificates, one that does not (`insecure`). Built once
/// each and cloned (a clone shares the connection pool). Requests must set their own total
/// timeout (`RequestBuilder::timeout`); the client only bounds connecting.
pub fn client(insecure: bool) -> Result<reqwest::Client, String> {
    static SECURE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static INSECURE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if insecure { &INSECURE } else { &SECURE };
    cell.get_or_init(|| {
        install_crypto_provider();
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
    })
    .clone()
}

/// A reqwest error as one line: what failed, and the innermost cause (e.g. `connection
/// refused`), without repeating the URL reqwest puts in its own message.
pub fn describe_error(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timeout after {}", format_duration(timeout));
    }
    let mut causes: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && causes.last() != Some(&text) {
            causes.push(text);
        }
        source = e.source();
    }
    match causes.last() {
        Some(last) if err.is_connect() => format!("cannot connect: {last}"),
        Some(last) => last.clone(),
        None if err.is_connect() => "cannot connect".to_string(),
        None => err.to_string(),
    }
}

/// An error and its sources, joined with `: `.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// `30s`, `1.5s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_once_each() {
        assert!(client(false).is_ok());
        assert!(client(true).is_ok());
        assert!(client(false).is_ok());
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
