//! `service.email`: SMTP with `lettre`. Port 465 is TLS from the first byte; other ports use
//! STARTTLS when the server offers it (unless `plain`), as Go's mail dialer Argo uses does.
//! Subject from the template's `email.subject`, body from `email.body` or the message, as HTML
//! when the service says `html: true`.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::header::ContentType,
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};

use super::{Attempt, REQUEST_TIMEOUT};
use crate::{config::EmailService, template::Rendered};

pub(crate) fn message(service: &EmailService, to: &str, rendered: &Rendered) -> Result<Message, Attempt> {
    let from = service
        .from
        .parse()
        .map_err(|e| Attempt::Fail(format!("from address {:?}: {e}", service.from)))?;
    let mut builder = Message::builder().from(from);
    // A recipient may list several addresses, comma-separated (as Argo's).
    for address in to.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        builder = builder.to(address
            .parse()
            .map_err(|e| Attempt::Fail(format!("recipient {address:?}: {e}")))?);
    }
    builder
        .subject(&rendered.email_subject)
        .header(if service.html {
            ContentType::TEXT_HTML
        } else {
            ContentType::TEXT_PLAIN
        })
        .body(rendered.email_body.clone())
        .map_err(|e| Attempt::Fail(format!("cannot build the message: {e}")))
}

pub(crate) async fn send(service: &EmailService, to: &str, rendered: &Rendered) -> Result<(), Attempt> {
    shared_runtime::http::install_crypto_provider();
    let message = message(service, to, rendered)?;
    let tls = TlsParameters::builder(service.host.clone())
        .dangerous_accept_invalid_certs(service.insecure_skip_verify)
        .build()
        .map_err(|e| Attempt::Fail(format!("TLS set-up: {e}")))?;
    let tls = match (service.port, service.plain) {
        (465, _) => Tls::Wrapper(tls),
        (_, true) => Tls::None,
        _ => Tls::Opportunistic(tls),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&service.host)
        .port(service.port)
        .tls(tls)
        .timeout(Some(REQUEST_TIMEOUT));
    if !service.username.is_empty() {
        transport = transport.credentials(Credentials::new(
            service.username.clone(),
            service.password.clone(),
        ));
    }
    match transport.build().send(message).await {
        Ok(_) => Ok(()),
        // Permanent SMTP answers (5xx: unknown mailbox, auth refused) will not change on retry.
        Err(e) if e.is_permanent() => Err(Attempt::Fail(format!(
            "SMTP: {}",
            shared_runtime::http::error_chain(&e)
        ))),
        Err(e) => Err(Attempt::Retry(format!(
            "SMTP: {}",
            shared_runtime::http::error_chain(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_subject_body_and_content_type() {
        let service = EmailService {
            host: "127.0.0.1".into(),
            port: 25,
            from: "argo@example.com".into(),
            html: true,
            ..Default::default()
        };
        let rendered = Rendered {
            email_subject: "Rollout web has been completed.".into(),
            email_body: "<b>done</b>".into(),
            ..Default::default()
        };
        let Ok(message) = message(&service, "ops@example.com", &rendered) else {
            panic!("message")
        };
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Subject: Rollout web has been completed."),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/html"), "{text}");
        assert!(text.contains("To: ops@example.com"), "{text}");
        let Ok(two) = super::message(&service, "a@example.com, b@example.com", &rendered) else {
            panic!("two")
        };
        assert!(
            String::from_utf8(two.formatted())
                .unwrap()
                .contains("To: a@example.com, b@example.com")
        );
        let Err(Attempt::Fail(reason)) = super::message(&service, "not an address", &rendered) else {
            panic!("accepted a bad address")
        };
        assert!(reason.starts_with("recipient \"not an address\""), "{reason}");
    }
}
