//! Who wants to hear about an object: the annotations
//! `notifications.argoproj.io/subscribe.<trigger>.<service>: <r1>;<r2>` (or
//! `subscribe.<service>` for the default triggers) and the ConfigMap's global subscriptions,
//! resolved to destinations (trigger, service, recipient).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;

const PREFIX: &str = "notifications.argoproj.io/subscribe.";

/// One place a trigger's notifications go.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Destination {
    pub trigger: String,
    pub service: String,
    /// Slack channel, email address; empty for a webhook.
    pub recipient: String,
}

/// The destinations subscribed by annotations (of the object and of the objects it inherits
/// subscriptions from) and by the global subscriptions whose selector matches `labels`.
pub fn destinations<'a>(
    config: &Config,
    annotation_sets: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> BTreeSet<Destination> {
    let mut out = BTreeSet::new();
    for annotations in annotation_sets {
        for (key, value) in annotations {
            let Some(rest) = key.strip_prefix(PREFIX) else {
                continue;
            };
            let (triggers, service) = match rest.rsplit_once('.') {
                Some((trigger, service)) => (vec![trigger.to_string()], service),
                None => (config.default_triggers_for(rest).to_vec(), rest),
            };
            for trigger in triggers {
                for recipient in recipients(value) {
                    out.insert(Destination {
                        trigger: trigger.clone(),
                        service: service.to_string(),
                        recipient,
                    });
                }
            }
        }
    }
    for (subscription, selector) in &config.subscriptions {
        if !selector.matches(labels) {
            continue;
        }
        for entry in &subscription.recipients {
            let (service, recipient) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
            let triggers = if subscription.triggers.is_empty() {
                config.default_triggers_for(service).to_vec()
            } else {
                subscription.triggers.clone()
            };
            for trigger in triggers {
                out.insert(Destination {
                    trigger,
                    service: service.trim().to_string(),
                    recipient: recipient.trim().to_string(),
                });
            }
        }
    }
    out
}

/// `a; b;c` → `[a, b, c]`; an empty value is one empty recipient (a webhook needs none).
fn recipients(value: &str) -> Vec<String> {
    let list: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        vec![String::new()]
    } else {
        list
    }
}

/// A label selector in its string form (`app=web,tier in (a,b),!legacy`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Parses Kubernetes' label selector syntax; empty selects everything.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_string())
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotIn(key.trim().to_string(), vec![value.trim().to_string()])
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::In(key.trim().to_string(), vec![value.trim().to_string()])
            } else if let Some((key, set)) = set_requirement(part, " notin ") {
                Requirement::NotIn(key, set?)
            } else if let Some((key, set)) = set_requirement(part, " in ") {
                Requirement::In(key, set?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.to_string())
            } else {
                return Err(format!("invalid label selector {text:?}: cannot parse {part:?}"));
            };
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

type SetRequirement = (String, Result<Vec<String>, String>);

fn set_requirement(part: &str, operator: &str) -> Option<SetRequirement> {
    let (key, set) = part.split_once(operator)?;
    let set = set.trim();
    let values = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|v| v.trim().to_string()).collect())
        .ok_or_else(|| format!("invalid label selector: {set:?} is not a (value, ...) set"));
    Some((key.trim().to_string(), values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn dest(trigger: &str, service: &str, recipient: &str) -> Destination {
        Destination {
            trigger: trigger.into(),
            service: service.into(),
            recipient: recipient.into(),
        }
    }

    #[test]
    fn annotations_give_one_destination_per_recipient() {
        let config = Config::parse(
            &map(&[("defaultTriggers", "[on-rollout-aborted, on-rollout-completed]")]),
            BTreeMap::new(),
        );
        let annotations = map(&[
            // The seed's Manifest 8.
            (
                "notifications.argoproj.io/subscribe.on-rollout-completed.slack",
                "deployments",
            ),
            (
                "notifications.argoproj.io/subscribe.on-rollout-aborted.email",
                "a@x.io; b@x.io",
            ),
            (
                "notifications.argoproj.io/subscribe.on-rollout-completed.hooks",
                "",
            ),
            ("notifications.argoproj.io/subscribe.teams", "ops"),
            ("unrelated", "x"),
        ]);
        let got = destinations(&config, [&annotations], &BTreeMap::new());
        let want = BTreeSet::from([
            dest("on-rollout-completed", "slack", "deployments"),
            dest("on-rollout-aborted", "email", "a@x.io"),
            dest("on-rollout-aborted", "email", "b@x.io"),
            dest("on-rollout-completed", "hooks", ""),
            dest("on-rollout-aborted", "teams", "ops"),
            dest("on-rollout-completed", "teams", "ops"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn global_subscriptions_apply_where_the_selector_matches() {
        let config = Config::parse(
            &map(&[(
                "subscriptions",
                "- recipients: [slack:ops, 'email:oncall@x.io']\n  triggers: [on-rollout-aborted]\n  selector: tier in (web, api),!legacy\n",
            )]),
            BTreeMap::new(),
        );
        assert!(config.problems.is_empty(), "{:?}", config.problems);
        let none = BTreeMap::new();
        assert!(destinations(&config, [&none], &map(&[("tier", "db")])).is_empty());
        assert!(destinations(&config, [&none], &map(&[("tier", "web"), ("legacy", "1")])).is_empty());
        assert_eq!(
            destinations(&config, [&none], &map(&[("tier", "api")])),
            BTreeSet::from([
                dest("on-rollout-aborted", "slack", "ops"),
                dest("on-rollout-aborted", "email", "oncall@x.io")
            ])
        );
    }

    #[test]
    fn selectors_parse_the_kubernetes_syntax() {
        let s = Selector::parse("app=web, env!=prod, tier notin (a,b), track").unwrap();
        assert!(s.matches(&map(&[("app", "web"), ("env", "dev"), ("track", "x")])));
        assert!(!s.matches(&map(&[("app", "web"), ("env", "prod"), ("track", "x")])));
        assert!(!s.matches(&map(&[("app", "web"), ("tier", "a"), ("track", "x")])));
        assert!(!s.matches(&map(&[("app", "web")])));
        assert!(Selector::parse("").unwrap().matches(&BTreeMap::new()));
        assert!(
            Selector::parse("a in b")
                .unwrap_err()
                .contains("is not a (value, ...) set")
        );
        assert!(
            Selector::parse("a > 1")
                .unwrap_err()
                .contains("cannot parse \"a > 1\"")
        );
    }
}
