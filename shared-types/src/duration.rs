//! Go duration strings (`"30s"`, `"5m"`, `"1h30m"`) as used by Argo Rollouts specs.
//!
//! [`parse_go_duration_nanos`] follows Go's `time.ParseDuration` exactly (grammar, overflow rules
//! and error texts). [`parse_duration`] is the same parser returning a [`std::time::Duration`],
//! which cannot be negative. [`parse_seconds_or_duration`] and [`pause_seconds`] add
//! Argo's rule for pause durations: a plain integer means seconds.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Why a duration string could not be used. The texts match Go's `time.ParseDuration` errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text does not follow the `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` grammar, or overflows.
    #[error("time: invalid duration {}", go_quote(.0))]
    Invalid(String),
    /// A number is not followed by a unit (e.g. `"5"`).
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    /// A unit other than `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` was used.
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// The duration is valid in Go but negative, which `std::time::Duration` cannot hold.
    #[error("negative duration {} is not supported", go_quote(.0))]
    Negative(String),
}

/// Quotes a string the way Go's `time` package does in its error messages: double quotes, `"`
/// and `\` escaped, bytes outside printable ASCII written as `\xNN`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s.as_bytes() {
        if !(0x20..0x80).contains(&b) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(char::from(b));
        }
    }
    out.push('"');
    out
}

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MINUTE: u64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u64 = 60 * NANOS_PER_MINUTE;
/// 1<<63, the magnitude limit Go checks against while accumulating.
const LIMIT: u64 = 1 << 63;

/// Consumes leading decimal digits; `None` on overflow past 1<<63 (Go's `leadingInt`).
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Consumes the digits after a decimal point, ignoring precision that does not fit (Go's
/// `leadingFraction`). Returns the digits as an integer and the power of ten they are scaled by.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let mut x: u64 = 0;
    let mut scale = 1.0_f64;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if !overflow {
            if x > (LIMIT - 1) / 10 {
                overflow = true;
            } else {
                let y = x * 10 + u64::from(s[i] - b'0');
                if y > LIMIT {
                    overflow = true;
                } else {
                    x = y;
                    scale *= 10.0;
                }
            }
        }
        i += 1;
    }
    (x, scale, &s[i..])
}

/// Parses a Go duration string into signed nanoseconds, exactly like Go's `time.ParseDuration`:
/// an optional sign, then one or more decimal numbers (with optional fraction) each followed by a
/// unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), e.g. `"300ms"`, `"-1.5h"`, `"2h45m"`. `"0"`
/// (optionally signed) is the only number allowed without a unit.
pub fn parse_go_duration_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (whole, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();

        let mut frac = 0_u64;
        let mut scale = 1.0_f64;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let (f, sc, rest) = leading_fraction(s);
            frac = f;
            scale = sc;
            s = rest;
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }

        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let (unit_text, rest) = s.split_at(unit_len);
        s = rest;
        let unit = match unit_text {
            b"ns" => 1,
            // "us", "µs" (U+00B5 micro sign) and "μs" (U+03BC Greek mu).
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => NANOS_PER_MICRO,
            b"ms" => NANOS_PER_MILLI,
            b"s" => NANOS_PER_SECOND,
            b"m" => NANOS_PER_MINUTE,
            b"h" => NANOS_PER_HOUR,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: String::from_utf8_lossy(unit_text).into_owned(),
                    input: input.to_string(),
                });
            }
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if frac > 0 {
            // Same float arithmetic as Go, so results are identical to the nanosecond.
            let extra = (frac as f64 * (unit as f64 / scale)) as u64;
            value = value.checked_add(extra).ok_or_else(invalid)?;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // total <= 1<<63, so this is at least i64::MIN (Go wraps the same way).
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Parses a Go duration string (see [`parse_go_duration_nanos`]) into a [`Duration`]. Negative
/// durations (other than `-0`) are rejected with [`DurationError::Negative`].
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(input)?;
    let nanos = u64::try_from(nanos).map_err(|_| DurationError::Negative(input.to_string()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Argo's rule for pause-like durations given as strings: an integer (e.g. `"30"`) means that many
/// seconds, anything else must be a Go duration string (e.g. `"30s"`, `"1h"`).
pub fn parse_seconds_or_duration(input: &str) -> Result<Duration, DurationError> {
    if let Ok(secs) = input.parse::<i32>() {
        let secs = u64::try_from(secs).map_err(|_| DurationError::Negative(input.to_string()))?;
        return Ok(Duration::from_secs(secs));
    }
    parse_duration(input)
}

/// Whole seconds of a pause duration the way Argo computes them (`RolloutPause.DurationSeconds`):
/// an integer is seconds; a string is first tried as a 32-bit integer (seconds), then as a Go
/// duration truncated to whole seconds (`"1500ms"` → 1). Negative values are rejected with
/// [`DurationError::Negative`].
pub fn pause_seconds(value: &IntOrString) -> Result<i64, DurationError> {
    let (secs, text) = match value {
        IntOrString::Int(secs) => (i64::from(*secs), None),
        IntOrString::String(text) => match text.parse::<i32>() {
            Ok(secs) => (i64::from(secs), Some(text)),
            Err(_) => (
                parse_go_duration_nanos(text)? / NANOS_PER_SECOND as i64,
                Some(text),
            ),
        },
    };
    if secs < 0 {
        let shown = text.cloned().unwrap_or_else(|| secs.to_string());
        return Err(DurationError::Negative(shown));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;
    const US: i64 = 1_000;
    const MIN: i64 = 60 * S;
    const H: i64 = 60 * MIN;

    #[test]
    fn parses_go_examples() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10),
            ("11us", 11 * US),
            ("12µs", 12 * US),
            ("12μs", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * MIN),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * MIN),
            ("1h30m", 90 * MIN),
            ("10.5s4m", 4 * MIN + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * MIN + 3 * S + 400 * MS)),
            ("1h2m3s4ms5us6ns", H + 2 * MIN + 3 * S + 4 * MS + 5 * US + 6),
            ("39h9m14.425s", 39 * H + 9 * MIN + 14 * S + 425 * MS),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * MIN),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("0.100000000000000000000h", 6 * MIN),
            ("0.830103483285477580700h", 49 * MIN + 48 * S + 372_539_827),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration_nanos(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_like_go() {
        let cases: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("1.5.s", r#"time: missing unit in duration "1.5.s""#),
            ("5 s", r#"time: unknown unit " s" in duration "5 s""#),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            (
                "9223372036854775.808us",
                r#"time: invalid duration "9223372036854775.808us""#,
            ),
            (
                "9223372036854ms775us808ns",
                r#"time: invalid duration "9223372036854ms775us808ns""#,
            ),
            (
                "-9223372036854775809ns",
                r#"time: invalid duration "-9223372036854775809ns""#,
            ),
            ("1é", r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#),
        ];
        for (input, want) in cases {
            let err = parse_go_duration_nanos(input).expect_err(input);
            assert_eq!(err.to_string(), *want, "input {input:?}");
        }
    }

    #[test]
    fn std_duration_rejects_negative() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        let err = parse_duration("-5s").unwrap_err();
        assert_eq!(err, DurationError::Negative("-5s".into()));
        assert_eq!(err.to_string(), r#"negative duration "-5s" is not supported"#);
    }

    #[test]
    fn unitless_integer_means_seconds() {
        assert_eq!(parse_seconds_or_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_seconds_or_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds_or_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_seconds_or_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(matches!(
            parse_seconds_or_duration("1.5"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_seconds_or_duration("-3"),
            Err(DurationError::Negative(_))
        ));
    }

    #[test]
    fn pause_seconds_follow_argo() {
        assert_eq!(pause_seconds(&IntOrString::Int(10)), Ok(10));
        assert_eq!(pause_seconds(&IntOrString::String("45".into())), Ok(45));
        assert_eq!(pause_seconds(&IntOrString::String("2m".into())), Ok(120));
        // Go truncates to whole seconds.
        assert_eq!(pause_seconds(&IntOrString::String("1500ms".into())), Ok(1));
        assert_eq!(pause_seconds(&IntOrString::String("-0".into())), Ok(0));
        assert_eq!(
            pause_seconds(&IntOrString::String("-5s".into())),
            Err(DurationError::Negative("-5s".into()))
        );
        assert_eq!(
            pause_seconds(&IntOrString::Int(-1)),
            Err(DurationError::Negative("-1".into()))
        );
        assert!(pause_seconds(&IntOrString::String("soon".into())).is_err());
        // Too large for 32 bits: not an integer in Argo's eyes, and not a duration either.
        assert!(matches!(
            pause_seconds(&IntOrString::String("99999999999".into())),
            Err(DurationError::MissingUnit(_))
        ));
    }
}
