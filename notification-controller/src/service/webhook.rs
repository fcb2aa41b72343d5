//! `service.webhook.<name>`: an HTTP request per notification: by default a GET of the service
//! URL with the message as body; the template's `webhook.<name>` section sets the method, a path
//! joined to the URL and the body. The service adds headers and basic auth.

use super::{Attempt, REQUEST_TIMEOUT, http_client, http_status, transport};
use crate::config::{WebhookService, WebhookTemplate};

/// The request's URL: Argo joins a non-empty path with exactly one `/`.
pub(crate) fn url(base: &str, path: &str) -> String {
    if path.is_empty() {
        base.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
    }
}

pub(crate) async fn send(service: &WebhookService, request: &WebhookTemplate) -> Result<(), Attempt> {
    let method = if request.method.is_empty() {
        "GET"
    } else {
        request.method.as_str()
    };
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Attempt::Fail(format!("invalid method {method:?}")))?;
    let url = url(&service.url, &request.path);
    let mut builder = http_client(service.insecure_skip_verify)?
        .request(method, &url)
        .timeout(REQUEST_TIMEOUT)
        .body(request.body.clone());
    for header in &service.headers {
        builder = builder.header(&header.name, &header.value);
    }
    if let Some(auth) = &service.basic_auth {
        builder = builder.basic_auth(&auth.username, Some(&auth.password));
    }
    let response = builder.send().await.map_err(|e| transport(&e))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    http_status(status, &body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_join_with_one_slash() {
        assert_eq!(super::url("http://h/api/", "/v1/x"), "http://h/api/v1/x");
        assert_eq!(super::url("http://h/api", "v1"), "http://h/api/v1");
        assert_eq!(super::url("http://h/api/", ""), "http://h/api/");
    }
}
