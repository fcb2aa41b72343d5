//! `restart NAME [--in D]`: sets `spec.restartAt`; the controller then evicts older pods.

use std::io::Write;

use jiff::{SignedDuration, Timestamp};
use kube::Api;
use serde_json::json;
use shared_types::{duration::parse_seconds_or_duration, rollout::Rollout};

use super::patch;
use crate::{cli::RestartArgs, error::Error, kube::Session};

/// The `restartAt` value: now plus `in_`, whole seconds, RFC 3339 in UTC.
pub fn restart_at(now: Timestamp, in_: Option<&str>) -> Result<String, Error> {
    let delay = match in_ {
        Some(d) => {
            parse_seconds_or_duration(d).map_err(|e| Error::Usage(format!("invalid --in {d:?}: {e}")))?
        }
        None => std::time::Duration::ZERO,
    };
    let delay = SignedDuration::try_from(delay).map_err(|e| Error::Usage(format!("invalid --in: {e}")))?;
    let at = now
        .checked_add(delay)
        .map_err(|e| Error::Usage(format!("invalid --in: {e}")))?;
    Ok(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Schedules the restart and prints `rollout '<name>' restarts in <in>`.
pub async fn run(session: &Session, args: &RestartArgs, out: &mut dyn Write) -> Result<(), Error> {
    let at = restart_at(Timestamp::now(), args.in_.as_deref())?;
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let ro = patch::merge(&api, &args.name, &json!({"spec": {"restartAt": at}})).await?;
    let name = ro.metadata.name.as_deref().unwrap_or(&args.name);
    writeln!(
        out,
        "rollout '{name}' restarts in {}",
        args.in_.as_deref().unwrap_or("0s")
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_times() {
        let now: Timestamp = "2025-03-01T10:00:00.7Z".parse().unwrap();
        assert_eq!(restart_at(now, None).unwrap(), "2025-03-01T10:00:00Z");
        assert_eq!(restart_at(now, Some("30s")).unwrap(), "2025-03-01T10:00:30Z");
        assert_eq!(restart_at(now, Some("90")).unwrap(), "2025-03-01T10:01:30Z");
        assert!(restart_at(now, Some("soon")).is_err());
    }
}
