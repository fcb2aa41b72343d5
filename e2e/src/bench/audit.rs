//! Counting API requests from the kube-apiserver audit log (`AUDIT_LOG=1 e2e/cluster/up.sh`:
//! JSON lines, Metadata level, `RequestReceived` stage omitted).
//!
//! Each request is counted once (by `auditID`; a watch logs `ResponseStarted` and later
//! `ResponseComplete`) in the time window holding its `requestReceivedTimestamp`. Requests are
//! attributed to the controller by their `User-Agent`, the only thing that tells clients apart
//! on the local cluster: every component there uses the same admin certificate.

use std::{
    collections::{BTreeMap, HashSet},
    io::BufRead,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use jiff::Timestamp;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Verbs that change state.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
/// Verbs shown as columns, in this order; others are counted too.
pub const VERBS: [&str; 8] = [
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "get",
    "list",
    "watch",
];
/// Label of requests without a User-Agent header.
pub const NO_USER_AGENT: &str = "(none)";

/// A named time window; requests received in `[start, end)` count towards it.
#[derive(Clone, Debug)]
pub struct Window {
    /// Name, e.g. the phase.
    pub name: String,
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

/// Requests counted by verb and resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestCounts {
    /// All requests.
    pub total: u64,
    /// Requests by verb.
    pub by_verb: BTreeMap<String, u64>,
    /// Requests by resource (`resource[.group][/subresource]`, or the path of a non-resource
    /// URL), then by verb.
    pub by_resource: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests answered with a status other than 2xx, by status code.
    pub failed_by_code: BTreeMap<u16, u64>,
    /// Requests answered with a status other than 2xx, by resource and status code.
    pub failed_by_resource: BTreeMap<String, BTreeMap<u16, u64>>,
}

impl RequestCounts {
    fn add(&mut self, verb: &str, resource: &str, code: Option<u16>) {
        self.total += 1;
        *self.by_verb.entry(verb.to_string()).or_default() += 1;
        *self
            .by_resource
            .entry(resource.to_string())
            .or_default()
            .entry(verb.to_string())
            .or_default() += 1;
        if let Some(code) = code.filter(|c| !(200..300).contains(c)) {
            *self.failed_by_code.entry(code).or_default() += 1;
            *self
                .failed_by_resource
                .entry(resource.to_string())
                .or_default()
                .entry(code)
                .or_default() += 1;
        }
    }

    /// Requests with this verb.
    pub fn verb(&self, verb: &str) -> u64 {
        self.by_verb.get(verb).copied().unwrap_or(0)
    }

    /// Requests on this resource with this verb.
    pub fn get(&self, resource: &str, verb: &str) -> u64 {
        self.by_resource
            .get(resource)
            .and_then(|v| v.get(verb))
            .copied()
            .unwrap_or(0)
    }

    /// Requests with a write verb.
    pub fn writes(&self) -> u64 {
        WRITE_VERBS.iter().map(|v| self.verb(v)).sum()
    }

    /// Write requests on Events (core `events` and `events.events.k8s.io`) with this verb.
    pub fn events(&self, verb: &str) -> u64 {
        EVENT_RESOURCES.iter().map(|r| self.get(r, verb)).sum()
    }

    /// Write requests on anything but Events.
    pub fn writes_without_events(&self) -> u64 {
        let events: u64 = WRITE_VERBS.iter().map(|v| self.events(v)).sum();
        self.writes() - events
    }
}

/// The two Event APIs.
pub const EVENT_RESOURCES: [&str; 2] = ["events", "events.events.k8s.io"];

/// Counts of one window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WindowCounts {
    /// Window name.
    pub name: String,
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339).
    pub end: String,
    /// Requests of the controller.
    pub controller: RequestCounts,
    /// Requests of every client, by User-Agent.
    pub by_user_agent: BTreeMap<String, u64>,
}

/// The audit log, counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditCounts {
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Lines read.
    pub lines: u64,
    /// Lines that were not audit events.
    pub unparsable: u64,
    /// Distinct requests seen.
    pub requests: u64,
    /// Requests outside every window.
    pub outside_windows: u64,
    /// One entry per window, in the order given.
    pub windows: Vec<WindowCounts>,
    /// The controller's writes other than Events: when they were received and the object's name.
    #[serde(skip)]
    pub controller_writes: Vec<(Timestamp, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(rename = "auditID")]
    audit_id: String,
    verb: String,
    #[serde(default)]
    user_agent: Option<String>,
    request_received_timestamp: Timestamp,
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    #[serde(default)]
    response_status: Option<ResponseStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    subresource: Option<String>,
    #[serde(default)]
    api_group: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: Option<u16>,
}

/// `resource[.group][/subresource]`, or the path of a non-resource URL.
fn resource_key(event: &RawEvent) -> String {
    match event
        .object_ref
        .as_ref()
        .and_then(|o| o.resource.as_deref().map(|r| (o, r)))
    {
        Some((o, resource)) => {
            let mut key = resource.to_string();
            if let Some(group) = o.api_group.as_deref().filter(|g| !g.is_empty()) {
                key.push('.');
                key.push_str(group);
            }
            if let Some(sub) = o.subresource.as_deref().filter(|s| !s.is_empty()) {
                key.push('/');
                key.push_str(sub);
            }
            key
        }
        None => event
            .request_uri
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// A readable, bounded label for a User-Agent.
pub fn user_agent_label(user_agent: &str) -> String {
    if user_agent.is_empty() {
        return NO_USER_AGENT.to_string();
    }
    user_agent.chars().take(120).collect()
}

/// Counts requests in the audit logs (`audit*.log`, rotated ones included) of `dir`.
pub fn count_dir(dir: &Path, windows: &[Window], controller: &Regex) -> Result<AuditCounts> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!(
            "no audit log in {} (was the cluster started with AUDIT_LOG=1?)",
            dir.display()
        );
    }
    let mut counter = Counter::new(windows, controller);
    for file in &files {
        let reader = std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        );
        counter
            .read(reader)
            .with_context(|| format!("reading {}", file.display()))?;
    }
    let mut counts = counter.finish();
    counts.files = files;
    Ok(counts)
}

/// Counts audit events line by line.
pub struct Counter<'a> {
    windows: &'a [Window],
    controller: &'a Regex,
    seen: HashSet<String>,
    counts: AuditCounts,
}

impl<'a> Counter<'a> {
    /// A counter for these windows, attributing to the controller the User-Agents `controller`
    /// matches (an absent header is matched as the empty string).
    pub fn new(windows: &'a [Window], controller: &'a Regex) -> Self {
        let counts = AuditCounts {
            windows: windows
                .iter()
                .map(|w| WindowCounts {
                    name: w.name.clone(),
                    start: w.start.to_string(),
                    end: w.end.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        Self {
            windows,
            controller,
            seen: HashSet::new(),
            counts,
        }
    }

    /// Reads JSON lines.
    pub fn read(&mut self, reader: impl BufRead) -> Result<()> {
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            self.counts.lines += 1;
            match serde_json::from_str::<RawEvent>(&line) {
                Ok(event) => self.add(&event),
                Err(_) => self.counts.unparsable += 1,
            }
        }
        Ok(())
    }

    fn add(&mut self, event: &RawEvent) {
        if !self.seen.insert(event.audit_id.clone()) {
            return;
        }
        self.counts.requests += 1;
        let at = event.request_received_timestamp;
        let Some(i) = self.windows.iter().position(|w| w.start <= at && at < w.end) else {
            self.counts.outside_windows += 1;
            return;
        };
        let window = &mut self.counts.windows[i];
        let user_agent = event.user_agent.as_deref().unwrap_or_default();
        *window
            .by_user_agent
            .entry(user_agent_label(user_agent))
            .or_default() += 1;
        if self.controller.is_match(user_agent) {
            let code = event.response_status.as_ref().and_then(|s| s.code);
            let resource = resource_key(event);
            window.controller.add(&event.verb, &resource, code);
            let name = event.object_ref.as_ref().and_then(|o| o.name.as_deref());
            if let Some(name) = name
                && WRITE_VERBS.contains(&event.verb.as_str())
                && !EVENT_RESOURCES.contains(&resource.as_str())
            {
                self.counts.controller_writes.push((at, name.to_string()));
            }
        }
    }

    /// The counts.
    pub fn finish(self) -> AuditCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        id: &str,
        stage: &str,
        verb: &str,
        ua: Option<&str>,
        at: &str,
        object_ref: &str,
        code: u16,
    ) -> String {
        let ua = ua.map(|u| format!(r#""userAgent":"{u}","#)).unwrap_or_default();
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"{stage}","requestURI":"/apis/x?watch=true","verb":"{verb}","user":{{"username":"argo-rs-admin"}},"sourceIPs":["127.0.0.1"],{ua}{object_ref}"responseStatus":{{"metadata":{{}},"code":{code}}},"requestReceivedTimestamp":"{at}","stageTimestamp":"{at}"}}"#
        )
    }

    #[test]
    fn counts_each_request_once_by_window_resource_and_agent() {
        let rs = r#""objectRef":{"resource":"rollouts","namespace":"b","name":"r","apiGroup":"argoproj.io","apiVersion":"v1alpha1","subresource":"status"},"#;
        let ev = r#""objectRef":{"resource":"events","namespace":"b","apiVersion":"v1"},"#;
        let ev2 = r#""objectRef":{"resource":"events","namespace":"b","apiGroup":"events.k8s.io","apiVersion":"v1"},"#;
        let log = [
            line(
                "1",
                "ResponseComplete",
                "patch",
                None,
                "2026-01-01T00:00:01.5Z",
                rs,
                200,
            ),
            line(
                "2",
                "ResponseComplete",
                "patch",
                None,
                "2026-01-01T00:00:01.6Z",
                rs,
                409,
            ),
            line(
                "3",
                "ResponseStarted",
                "watch",
                None,
                "2026-01-01T00:00:01.7Z",
                rs,
                200,
            ),
            line(
                "3",
                "ResponseComplete",
                "watch",
                None,
                "2026-01-01T00:00:01.7Z",
                rs,
                200,
            ),
            line(
                "4",
                "ResponseComplete",
                "create",
                Some(""),
                "2026-01-01T00:00:02.1Z",
                ev,
                201,
            ),
            line(
                "5",
                "ResponseComplete",
                "patch",
                None,
                "2026-01-01T00:00:02.2Z",
                ev2,
                200,
            ),
            line(
                "6",
                "ResponseComplete",
                "create",
                Some("kube-controller-manager/v1.37.2"),
                "2026-01-01T00:00:02.3Z",
                ev,
                201,
            ),
            line(
                "7",
                "ResponseComplete",
                "get",
                None,
                "2026-01-01T00:00:09Z",
                "",
                200,
            ),
            "not json".to_string(),
        ]
        .join("\n");
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let windows = vec![
            Window {
                name: "a".into(),
                start: t("2026-01-01T00:00:01Z"),
                end: t("2026-01-01T00:00:02Z"),
            },
            Window {
                name: "b".into(),
                start: t("2026-01-01T00:00:02Z"),
                end: t("2026-01-01T00:00:03Z"),
            },
        ];
        let controller = Regex::new("^$").unwrap();
        let mut counter = Counter::new(&windows, &controller);
        counter.read(log.as_bytes()).unwrap();
        let counts = counter.finish();
        assert_eq!(
            (
                counts.lines,
                counts.unparsable,
                counts.requests,
                counts.outside_windows
            ),
            (9, 1, 7, 1)
        );
        let a = &counts.windows[0].controller;
        assert_eq!(a.total, 3);
        assert_eq!(a.get("rollouts.argoproj.io/status", "patch"), 2);
        assert_eq!(a.get("rollouts.argoproj.io/status", "watch"), 1);
        assert_eq!(a.failed_by_code.get(&409), Some(&1));
        assert_eq!(
            a.failed_by_resource["rollouts.argoproj.io/status"].get(&409),
            Some(&1)
        );
        assert_eq!(a.writes(), 2);
        let b = &counts.windows[1].controller;
        assert_eq!((b.total, b.events("create"), b.events("patch")), (2, 1, 1));
        assert_eq!(b.writes_without_events(), 0);
        let writes: Vec<&str> = counts.controller_writes.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(writes, vec!["r", "r"]);
        assert_eq!(counts.windows[1].by_user_agent.get(NO_USER_AGENT), Some(&2));
        assert_eq!(
            counts.windows[1]
                .by_user_agent
                .get("kube-controller-manager/v1.37.2"),
            Some(&1)
        );
    }
}
