//! Delivery to the configured services. Each send retries transient failures (5xx, 429,
//! timeouts, refused connections) with back-off before giving up; the caller keeps going with
//! the other destinations either way. Error texts name the service and the cause, never a URL
//! or credential (a Slack webhook URL is itself a secret).

pub mod email;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use crate::{
    config::{Service, WebhookTemplate},
    template::Rendered,
};

/// Total timeout of one HTTP request or SMTP session.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries after the first attempt when the service config does not say (Argo's webhook default).
pub const DEFAULT_RETRIES: u32 = 3;

/// A send that did not succeed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// One attempt's failure: whether another attempt may help.
pub(crate) enum Attempt {
    Retry(String),
    Fail(String),
}

/// Sends `rendered` to `recipient` through the service named `name`.
pub async fn send(
    name: &str,
    service: &Service,
    recipient: &str,
    rendered: &Rendered,
    backoff: Backoff,
) -> Result<(), SendError> {
    match service {
        Service::Slack(slack) => {
            with_retries(backoff, DEFAULT_RETRIES, || {
                slack::send(slack, recipient, rendered)
            })
            .await
        }
        Service::Webhook(hook) => {
            // Without a `webhook.<name>` section in the template: a GET with the message as body.
            let request = rendered
                .webhook
                .get(name)
                .cloned()
                .unwrap_or_else(|| WebhookTemplate {
                    body: rendered.message.clone(),
                    ..Default::default()
                });
            with_retries(backoff, hook.retry_max.unwrap_or(DEFAULT_RETRIES), || {
                webhook::send(hook, &request)
            })
            .await
        }
        Service::Email(email) => {
            with_retries(backoff, DEFAULT_RETRIES, || {
                email::send(email, recipient, rendered)
            })
            .await
        }
    }
    .map_err(|e| SendError(format!("{} {name:?}: {}", service.kind(), e.0)))
}

/// Waits between attempts: `first`, doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
        }
    }
}

async fn with_retries<F, Fut>(backoff: Backoff, retries: u32, mut attempt: F) -> Result<(), SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Attempt>>,
{
    let mut wait = backoff.first;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(Attempt::Fail(reason)) => return Err(SendError(reason)),
            Err(Attempt::Retry(reason)) if tries > retries => {
                return Err(SendError(format!("{reason} (after {tries} attempts)")));
            }
            Err(Attempt::Retry(_)) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}

/// Classifies an HTTP response status: 2xx is success; 5xx (but 501) and 429 are worth another
/// attempt.
pub(crate) fn http_status(status: reqwest::StatusCode, body: &str) -> Result<(), Attempt> {
    if status.is_success() {
        return Ok(());
    }
    let body: String = body.trim().chars().take(200).collect();
    let reason = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    };
    if (status.is_server_error() && status != reqwest::StatusCode::NOT_IMPLEMENTED)
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(Attempt::Retry(reason))
    } else {
        Err(Attempt::Fail(reason))
    }
}

/// Classifies a transport error: timeouts and connection failures may pass.
pub(crate) fn transport(err: &reqwest::Error) -> Attempt {
    let reason = shared_runtime::http::describe_error(err, REQUEST_TIMEOUT);
    if err.is_timeout() || err.is_connect() || err.is_request() {
        Attempt::Retry(reason)
    } else {
        Attempt::Fail(reason)
    }
}

pub(crate) fn http_client(insecure: bool) -> Result<reqwest::Client, Attempt> {
    shared_runtime::http::client(insecure).map_err(Attempt::Fail)
}
