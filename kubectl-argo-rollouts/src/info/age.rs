//! Human-readable durations, as `kubectl get` and Argo's plugin print ages.
//!
//! This is Kubernetes' `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: exact seconds below
//! two minutes (`72s`, `106s`, `113s`), minutes and seconds below ten minutes (`2m52s`, `4m7s`,
//! `6m`), whole minutes below three hours (`19m`, `76m`), hours and minutes below eight hours,
//! then hours, days and years with decreasing precision.

use jiff::{SignedDuration, Timestamp};

/// Formats a duration like `duration.HumanDuration`.
pub fn human_duration(d: SignedDuration) -> String {
    // Go truncates `d.Seconds()` toward zero; a deviation of one second into the future is
    // tolerated as clock skew and shown as "0s".
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of an object created at `created`, seen at `now`. An object without a creation time is
/// as old as Go's zero time (year 1), which is what Argo shows for it.
pub fn age(created: Option<Timestamp>, now: Timestamp) -> String {
    let created = created.unwrap_or_else(go_zero_time);
    human_duration(now.duration_since(created))
}

/// Go's zero `time.Time`: 0001-01-01T00:00:00Z.
fn go_zero_time() -> Timestamp {
    // -62135596800 is the Unix time of 0001-01-01T00:00:00Z, well inside jiff's range.
    Timestamp::from_second(-62_135_596_800).unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(secs: i64) -> String {
        human_duration(SignedDuration::from_secs(secs))
    }

    #[test]
    fn matches_the_ages_seen_in_argo_transcripts() {
        assert_eq!(h(15), "15s");
        assert_eq!(h(72), "72s");
        assert_eq!(h(106), "106s");
        assert_eq!(h(119), "119s");
        assert_eq!(h(120), "2m");
        assert_eq!(h(172), "2m52s");
        assert_eq!(h(247), "4m7s");
        assert_eq!(h(375), "6m15s");
        assert_eq!(h(599), "9m59s");
        assert_eq!(h(600), "10m");
        assert_eq!(h(1140), "19m");
        assert_eq!(h(4565), "76m");
        assert_eq!(h(3 * 3600 - 1), "179m");
    }

    #[test]
    fn larger_units() {
        assert_eq!(h(3 * 3600), "3h");
        assert_eq!(h(3 * 3600 + 59 * 60), "3h59m");
        assert_eq!(h(8 * 3600), "8h");
        assert_eq!(h(47 * 3600), "47h");
        assert_eq!(h(48 * 3600), "2d");
        assert_eq!(h(7 * 24 * 3600), "7d");
        assert_eq!(h(7 * 24 * 3600 + 5 * 3600), "7d5h");
        assert_eq!(h(30 * 24 * 3600), "30d");
        assert_eq!(h(2 * 365 * 24 * 3600), "2y");
        assert_eq!(h(2 * 365 * 24 * 3600 + 24 * 3600), "2y1d");
        assert_eq!(h(10 * 365 * 24 * 3600), "10y");
    }

    #[test]
    fn clock_skew() {
        assert_eq!(h(-1), "0s");
        assert_eq!(h(-2), "<invalid>");
        assert_eq!(h(0), "0s");
    }
}
