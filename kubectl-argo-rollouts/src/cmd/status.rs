//! `status NAME`: prints the rollout's phase; with `--watch` (the default) prints a line on each
//! change until the rollout is Healthy or Degraded, or the timeout expires.

use futures::StreamExt;
use kube::Api;
use shared_types::{constants::phase, rollout::Rollout};

use super::watch::{deadline, interrupted, rollout_updates};
use crate::{Io, cli::StatusArgs, error::Error, info::phase::rollout_phase, kube::Session};

/// The status line: `Healthy`/`Degraded` alone when not watching, else `<phase> - <message>`
/// (or the phase alone when the message is empty).
pub fn status_line(phase: &str, message: &str) -> String {
    if message.is_empty() {
        phase.to_string()
    } else {
        format!("{phase} - {message}")
    }
}

fn degraded(message: &str) -> Error {
    Error::Degraded(format!(
        "The rollout is in a degraded state with message: {message}"
    ))
}

/// Runs `status`.
pub async fn run(session: &Session, args: &StatusArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let timeout = args.timeout.0;
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let ro = api.get(&args.name).await?;
    let (mut current, mut message) = rollout_phase(&ro);
    if !args.watch {
        if current == phase::HEALTHY || current == phase::DEGRADED {
            writeln!(io.out, "{current}")?;
        } else {
            writeln!(io.out, "{}", status_line(&current, &message))?;
        }
        return if current == phase::DEGRADED {
            Err(degraded(&message))
        } else {
            Ok(())
        };
    }
    let mut printed = status_line(&current, &message);
    writeln!(io.out, "{printed}")?;
    io.out.flush()?;
    let mut updates = rollout_updates(api, &args.name);
    let stop = deadline(timeout);
    let ctrl_c = interrupted();
    tokio::pin!(stop, ctrl_c);
    while current != phase::HEALTHY && current != phase::DEGRADED {
        tokio::select! {
            update = updates.next() => match update {
                Some(Some(ro)) => (current, message) = rollout_phase(&ro),
                Some(None) => return Err(Error::Api(format!("rollouts.argoproj.io \"{}\" not found", args.name))),
                None => break,
            },
            () = &mut stop => return Err(Error::Timeout("Rollout status watch exceeded timeout".into())),
            () = &mut ctrl_c => return Err(Error::Interrupted),
        }
        let line = status_line(&current, &message);
        if line != printed {
            writeln!(io.out, "{line}")?;
            io.out.flush()?;
            printed = line;
        }
    }
    if current == phase::DEGRADED {
        return Err(degraded(&message));
    }
    Ok(())
}
