//! What was sent, kept on the object in Argo's annotation `notified.notifications.argoproj.io`:
//! a JSON map from `[<oncePer>:]<trigger>:[<i>].<condition hash>:<service>:<recipient>` to the
//! unix second it was sent. Because the record travels with the object, a restart, a relist or
//! a second replica sees what was already sent and never sends it again.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    subscription::Destination,
    trigger::{Outcome, State},
};

/// Entries kept, newest first (Argo's limit).
pub const MAX_ENTRIES: usize = 100;

/// The parsed annotation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record(pub BTreeMap<String, i64>);

impl Record {
    /// Parses the annotation; an unreadable value is treated as empty (and reported by the
    /// caller), as a lost record can at worst repeat a notification.
    pub fn parse(annotation: Option<&str>) -> Result<Record, String> {
        match annotation {
            None | Some("") => Ok(Record::default()),
            Some(text) => serde_json::from_str(text).map(Record).map_err(|e| {
                format!(
                    "annotation {} is not a JSON map: {e}",
                    shared_types::constants::keys::NOTIFIED
                )
            }),
        }
    }

    /// The annotation value, keeping the newest [`MAX_ENTRIES`].
    pub fn to_annotation(&self) -> String {
        let mut entries: Vec<(&String, &i64)> = self.0.iter().collect();
        entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let kept: BTreeMap<&String, &i64> = entries.into_iter().take(MAX_ENTRIES).collect();
        serde_json::to_string(&kept).unwrap_or_default()
    }
}

/// A notification to send: one template list to one destination, recorded under `key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    pub key: String,
    pub destination: Destination,
    pub templates: Vec<String>,
}

/// Argo's record key.
pub fn key(once_per: Option<&str>, destination: &Destination, outcome: &Outcome) -> String {
    let condition = format!(
        "{}:[{}].{}:{}:{}",
        destination.trigger,
        outcome.index,
        outcome.condition_hash,
        destination.service,
        destination.recipient
    );
    match once_per {
        Some(value) => format!("{value}:{condition}"),
        None => condition,
    }
}

/// The plan for one object: what to send now, and the record without the entries of conditions
/// that went false (so their next false → true transition is sent again). Entries of `oncePer`
/// conditions are kept: their identity is the value, not the transition.
pub fn plan(record: &Record, evaluated: &[(Destination, Vec<Outcome>)]) -> (Vec<Due>, Record) {
    let mut due = Vec::new();
    let mut stale = BTreeSet::new();
    for (destination, outcomes) in evaluated {
        for outcome in outcomes {
            match &outcome.state {
                State::False => {
                    stale.insert(key(None, destination, outcome));
                }
                State::Holds => push_unless_recorded(
                    record,
                    &mut due,
                    key(None, destination, outcome),
                    destination,
                    outcome,
                ),
                State::HoldsOncePer(ids) => {
                    for id in ids {
                        push_unless_recorded(
                            record,
                            &mut due,
                            key(Some(id), destination, outcome),
                            destination,
                            outcome,
                        );
                    }
                }
            }
        }
    }
    let kept = Record(
        record
            .0
            .iter()
            .filter(|(k, _)| !stale.contains(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    );
    (due, kept)
}

fn push_unless_recorded(
    record: &Record,
    due: &mut Vec<Due>,
    key: String,
    destination: &Destination,
    outcome: &Outcome,
) {
    if !record.0.contains_key(&key) {
        due.push(Due {
            key,
            destination: destination.clone(),
            templates: outcome.send.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> Destination {
        Destination {
            trigger: "on-rollout-completed".into(),
            service: "slack".into(),
            recipient: "deployments".into(),
        }
    }

    fn outcome(state: State) -> Outcome {
        Outcome {
            index: 0,
            condition_hash: "h".into(),
            send: vec!["rollout-completed".into()],
            state,
        }
    }

    /// Runs one observation: plans, "sends" every due notification, records it.
    fn observe(record: &Record, state: State, now: i64) -> (usize, Record) {
        let (due, mut next) = plan(record, &[(dest(), vec![outcome(state)])]);
        for d in &due {
            next.0.insert(d.key.clone(), now);
        }
        (due.len(), next)
    }

    #[test]
    fn the_same_transition_seen_twice_sends_once() {
        let holds = State::HoldsOncePer(vec!["2.abc".into()]);
        let (sent, record) = observe(&Record::default(), holds.clone(), 100);
        assert_eq!(sent, 1);
        assert_eq!(
            record.0.keys().collect::<Vec<_>>(),
            ["2.abc:on-rollout-completed:[0].h:slack:deployments"]
        );
        // A relist, a restart (the record is read back from the annotation) or a second look.
        let reread = Record::parse(Some(&record.to_annotation())).unwrap();
        let (sent, _) = observe(&reread, holds, 101);
        assert_eq!(sent, 0);
    }

    #[test]
    fn a_condition_true_at_start_and_never_recorded_sends_once() {
        let (sent, record) = observe(&Record::default(), State::Holds, 100);
        assert_eq!(sent, 1);
        let (sent, record) = observe(&record, State::Holds, 101);
        assert_eq!(sent, 0);
        // False clears the entry: the next false → true transition is sent again.
        let (sent, record) = observe(&record, State::False, 102);
        assert_eq!((sent, record.0.len()), (0, 0));
        let (sent, _) = observe(&record, State::Holds, 103);
        assert_eq!(sent, 1);
    }

    #[test]
    fn once_per_entries_survive_the_condition_going_false() {
        let (_, record) = observe(&Record::default(), State::HoldsOncePer(vec!["2.abc".into()]), 100);
        let (_, record) = observe(&record, State::False, 101);
        assert_eq!(record.0.len(), 1);
        let (sent, _) = observe(&record, State::HoldsOncePer(vec!["3.def".into()]), 102);
        assert_eq!(sent, 1);
    }

    #[test]
    fn the_record_keeps_the_newest_hundred_and_rejects_garbage() {
        let record = Record((0..150).map(|i| (format!("k{i:03}"), i)).collect());
        let reread = Record::parse(Some(&record.to_annotation())).unwrap();
        assert_eq!(reread.0.len(), MAX_ENTRIES);
        assert!(reread.0.contains_key("k149") && !reread.0.contains_key("k049"));
        assert!(
            Record::parse(Some("{not json"))
                .unwrap_err()
                .contains("notified.notifications.argoproj.io")
        );
        assert_eq!(Record::parse(None).unwrap(), Record::default());
    }
}
