//! `resource.Quantity` canonicalisation, as done by Go's `ParseQuantity` followed by
//! `Quantity.MarshalJSON` (k8s.io/apimachinery `pkg/api/resource`).
//!
//! The pod-template hash covers the JSON that Go writes for the template, and Go never writes a
//! quantity back as it was read: it parses it and writes a canonical form, except when the input
//! already passed a cheap "is canonical" test, in which case the input string itself is kept
//! (so `"1.500"`, `"+1"`, `"01"` and `"1e3"` survive unchanged while `"1000m"` becomes `"1"`).
//! The parsing below follows the Go control flow step by step, because those quirks depend on
//! which internal representation (int64 fast path or arbitrary precision) Go took.
//!
//! Values are kept as a decimal digit string and a power-of-ten exponent so arbitrarily long
//! inputs behave like Go's `inf.Dec` path without a bignum dependency.

/// The quantity suffix family, which decides the canonical suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalExponent,
    BinarySI,
    DecimalSI,
}

/// A non-negative decimal number `digits × 10^exp`; `digits` holds ASCII digits without leading
/// zeros (empty means zero).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Magnitude {
    digits: Vec<u8>,
    exp: i64,
}

impl Magnitude {
    fn from_digits(raw: &[u8], exp: i64) -> Self {
        let start = raw.iter().position(|&b| b != b'0').unwrap_or(raw.len());
        Self {
            digits: raw[start..].to_vec(),
            exp,
        }
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Multiplies by a small factor (at most 2^32), in place.
    fn mul_small(&mut self, factor: u64) {
        let mut carry: u64 = 0;
        for d in self.digits.iter_mut().rev() {
            let v = u64::from(*d - b'0') * factor + carry;
            *d = b'0' + (v % 10) as u8;
            carry = v / 10;
        }
        let mut prefix = Vec::new();
        while carry > 0 {
            prefix.push(b'0' + (carry % 10) as u8);
            carry /= 10;
        }
        prefix.reverse();
        prefix.extend_from_slice(&self.digits);
        *self = Self::from_digits(&prefix, self.exp);
    }

    /// Adds one unit in the last place, in place.
    fn increment(&mut self) {
        for d in self.digits.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return;
            }
        }
        self.digits.insert(0, b'1');
    }

    /// Rounds away from zero to at most `-min_exp` decimal places (`inf.RoundUp` on a magnitude).
    /// Returns whether the value was unchanged.
    fn round_up_to_exp(&mut self, min_exp: i64) -> bool {
        if self.exp >= min_exp || self.is_zero() {
            return true;
        }
        let drop = usize::try_from(min_exp.saturating_sub(self.exp)).unwrap_or(usize::MAX);
        let keep_len = self.digits.len().saturating_sub(drop);
        let dropped_nonzero = self.digits[keep_len..].iter().any(|&d| d != b'0');
        let mut kept = Self::from_digits(&self.digits[..keep_len], min_exp);
        if dropped_nonzero {
            kept.increment();
        }
        *self = kept;
        !dropped_nonzero
    }

    /// The value as an integer, if it is one and fits in `u128`.
    fn as_u128(&self) -> Option<u128> {
        if self.is_zero() {
            return Some(0);
        }
        if self.exp < 0 {
            let frac = usize::try_from(-self.exp).ok()?;
            if frac > self.digits.len() || self.digits[self.digits.len() - frac..].iter().any(|&d| d != b'0')
            {
                return None;
            }
            return parse_u128(&self.digits[..self.digits.len() - frac]);
        }
        let mut v = parse_u128(&self.digits)?;
        for _ in 0..self.exp {
            v = v.checked_mul(10)?;
        }
        Some(v)
    }

    /// Compares with a small integer without overflow for huge exponents.
    fn cmp_int(&self, other: u128) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        if self.is_zero() {
            return 0.cmp(&other);
        }
        // Integer part (truncated) and whether a fraction remains.
        let int_part = if self.exp >= 0 {
            if self.exp > 40 {
                return Ordering::Greater;
            }
            self.as_u128()
        } else {
            let frac = usize::try_from(-self.exp).unwrap_or(usize::MAX);
            if frac >= self.digits.len() {
                Some(0)
            } else {
                parse_u128(&self.digits[..self.digits.len() - frac])
            }
        };
        let Some(int_part) = int_part else {
            return Ordering::Greater;
        };
        match int_part.cmp(&other) {
            Ordering::Equal => {
                if self.as_u128().is_some() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            o => o,
        }
    }

    /// Removes trailing zero digits into the exponent (Go's `removeInt64Factors(v, 10)`).
    fn normalize(&mut self) {
        while self.digits.len() > 1 && self.digits.last() == Some(&b'0') {
            self.digits.pop();
            self.exp += 1;
        }
    }
}

fn parse_u128(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > 38 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The parsed quantity: either the input string kept verbatim, or a value to canonicalise.
#[derive(Debug)]
enum Parsed {
    Verbatim(String),
    Value {
        negative: bool,
        magnitude: Magnitude,
        format: Format,
    },
}

/// The pieces `parseQuantityString` returns.
struct Split<'a> {
    positive: bool,
    value: &'a str,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// Port of Go's `parseQuantityString`: sign, numerator (leading zeros stripped), denominator,
/// suffix. `value` is the numeric prefix as written (sign and leading zeros included).
fn split_quantity(s: &str) -> Option<Split<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut positive = true;
    let mut pos = 0;
    if pos < end {
        match b[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    // Strip leading zeros; a string of only zeros (or only a sign) is zero.
    loop {
        if pos >= end {
            return Some(Split {
                positive,
                value: "0",
                num: "0",
                denom: "",
                suffix: "",
            });
        }
        if b[pos] == b'0' {
            pos += 1;
        } else {
            break;
        }
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &s[num_start..pos];
    if pos >= end {
        return Some(Split {
            positive,
            value: s,
            num,
            denom: "",
            suffix: "",
        });
    }
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        if pos >= end {
            return Some(Split {
                positive,
                value: s,
                num,
                denom,
                suffix: "",
            });
        }
    }
    let value = &s[..pos];
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos >= end {
        return Some(Split {
            positive,
            value,
            num,
            denom,
            suffix: &s[suffix_start..],
        });
    }
    if b[pos] == b'-' || b[pos] == b'+' {
        pos += 1;
    }
    while pos < end {
        if !b[pos].is_ascii_digit() {
            return None;
        }
        pos += 1;
    }
    Some(Split {
        positive,
        value,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// Port of the suffixer's `interpret`: (base, exponent, format).
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            if rest.is_empty() {
                return None;
            }
            // Go parses an int64 and truncates it to int32.
            let parsed: i64 = rest.parse().ok()?;
            Some((10, parsed as i32, Format::DecimalExponent))
        }
    }
}

/// Port of Go's `ParseQuantity`, keeping only what `MarshalJSON` needs.
fn parse(s: &str) -> Option<Parsed> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Parsed::Verbatim(s.to_string()));
    }
    let sp = split_quantity(s)?;
    let (base, exponent, mut format) = interpret_suffix(sp.suffix)?;
    let num_len = i32::try_from(sp.num.len()).unwrap_or(i32::MAX);
    let denom_len = i32::try_from(sp.denom.len()).unwrap_or(i32::MAX);

    // The int64 fast path, including its "already canonical, keep the string" shortcut.
    let mut mantissa: i64 = 1;
    let (precision, mut scale) = match format {
        Format::DecimalExponent | Format::DecimalSI => {
            (18i32.saturating_sub(num_len.saturating_add(denom_len)), exponent)
        }
        Format::BinarySI if exponent >= 0 && sp.denom.is_empty() => {
            mantissa <<= exponent;
            // Go: 15 - len(num) - int32(float32(exponent)*3/10) - 1; exact for multiples of 10.
            (15i32.saturating_sub(num_len) - exponent * 3 / 10 - 1, 0)
        }
        Format::BinarySI => (-1, 0),
    };
    if precision >= 0 {
        scale = scale.wrapping_sub(denom_len);
        if scale >= -9 {
            let shifted = format!("{}{}", sp.num, sp.denom);
            let value: i64 = shifted.parse().ok()?;
            if let Some(mut result) = value.checked_mul(mantissa) {
                if !sp.positive {
                    result = -result;
                }
                let canonical_input = match format {
                    Format::BinarySI => exponent % 10 == 0 && (value & 0x07) != 0,
                    _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
                };
                if canonical_input {
                    return Some(Parsed::Verbatim(s.to_string()));
                }
                let magnitude =
                    Magnitude::from_digits(result.unsigned_abs().to_string().as_bytes(), scale.into());
                return Some(Parsed::Value {
                    negative: result < 0,
                    magnitude,
                    format,
                });
            }
        }
    }

    // The arbitrary precision path (Go's inf.Dec).
    let (negative, mut magnitude) = parse_decimal(sp.value)?;
    if base == 10 {
        magnitude.exp += i64::from(exponent);
    } else {
        // Binary suffixes have exponents 10..=60: multiply by 2^exponent in 32-bit steps.
        let mut remaining = exponent;
        while remaining > 0 {
            let step = remaining.min(32);
            magnitude.mul_small(1u64 << step);
            remaining -= step;
        }
    }
    // Non-zero values are rounded up to the nano scale.
    magnitude.round_up_to_exp(-9);
    if format == Format::BinarySI && magnitude.cmp_int(i64::MAX as u128) == std::cmp::Ordering::Greater {
        magnitude = Magnitude::from_digits(i64::MAX.to_string().as_bytes(), 0);
    }
    if format == Format::BinarySI && !magnitude.is_zero() && magnitude.cmp_int(1) == std::cmp::Ordering::Less
    {
        format = Format::DecimalSI;
    }
    Some(Parsed::Value {
        negative,
        magnitude,
        format,
    })
}

/// Port of `inf.Dec.SetString`: optional sign, digits with at most one `.`, at least one digit.
fn parse_decimal(s: &str) -> Option<(bool, Magnitude)> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.len() + frac.len() == 0 {
        return None;
    }
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let exp = -i64::try_from(frac.len()).ok()?;
    Some((negative, Magnitude::from_digits(&digits, exp)))
}

/// Port of `Quantity.CanonicalizeBytes` for a parsed (non-verbatim) value.
fn canonicalize(negative: bool, mut m: Magnitude, format: Format) -> String {
    if m.is_zero() {
        return "0".to_string();
    }
    let sign = if negative { "-" } else { "" };
    let mut format = format;
    if format == Format::BinarySI {
        if m.cmp_int(1024) == std::cmp::Ordering::Less {
            format = Format::DecimalSI;
        } else {
            let mut rounded = m.clone();
            let exact = rounded.round_up_to_exp(0);
            match rounded.as_u128() {
                Some(mut v) if exact => {
                    let mut times = 0;
                    while v >= 1024 && v % 1024 == 0 {
                        v /= 1024;
                        times += 1;
                    }
                    let suffix = match times {
                        1 => "Ki",
                        2 => "Mi",
                        3 => "Gi",
                        4 => "Ti",
                        5 => "Pi",
                        6 => "Ei",
                        _ => "",
                    };
                    return format!("{sign}{v}{suffix}");
                }
                // Not an integer number of bytes: Go falls back to DecimalSI.
                _ => format = Format::DecimalSI,
            }
        }
    }
    m.normalize();
    // Lower the exponent to a multiple of three (Go's modulo truncates towards zero, and the
    // loop multiplies by ten until `exp % 3 == 0`, i.e. it rounds the exponent down).
    while m.exp % 3 != 0 {
        m.digits.push(b'0');
        m.exp -= 1;
    }
    let digits = String::from_utf8_lossy(&m.digits);
    let suffix = match format {
        Format::DecimalExponent if m.exp == 0 => String::new(),
        Format::DecimalExponent => format!("e{}", m.exp),
        // Go has no DecimalSI suffix beyond E (or below n, which rounding prevents) and then
        // writes the mantissa alone; reproduced rather than "fixed".
        _ => match m.exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        }
        .to_string(),
    };
    format!("{sign}{digits}{suffix}")
}

/// The string Go's `resource.Quantity` writes to JSON after reading `input` from JSON, e.g.
/// `"1000m"` → `"1"`, `"0.5"` → `"500m"`, `"1024Mi"` → `"1Gi"`, while already-canonical
/// inputs such as `"100M"` are kept as written.
///
/// Returns `None` when Go would refuse the quantity (its JSON decoding of the whole object would
/// fail, so there is no hash to match).
pub fn canonical_quantity(input: &str) -> Option<String> {
    // Quantity.UnmarshalJSON trims white space before parsing.
    match parse(input.trim())? {
        Parsed::Verbatim(s) => Some(s),
        Parsed::Value {
            negative,
            magnitude,
            format,
        } => Some(canonicalize(negative, magnitude, format)),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_quantity;

    #[test]
    fn common_forms() {
        for (input, want) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("100M", "100M"),
            ("2Gi", "2Gi"),
            ("0", "0"),
            ("1.5Gi", "1536Mi"),
            ("0.1Ki", "102400m"),
        ] {
            assert_eq!(canonical_quantity(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn invalid() {
        // Go accepts some odd strings ("." and "e3" are zero, "+" too); these it rejects.
        for input in ["", "abc", "1K", "1e", "1Mi5", "1.2.3", "1e3.5"] {
            assert_eq!(canonical_quantity(input), None, "{input}");
        }
    }
}
