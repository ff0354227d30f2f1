//! Go's duration syntax, as `parseutil.ParseDurationSecond` reads it: a bare number is
//! seconds, otherwise `time.ParseDuration` units plus `d`.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DurationError {
    Invalid,
    Negative,
    TooLarge,
}

/// `parseutil.ParseDurationSecond` for strings: empty is zero, a bare number
/// is seconds, anything else is a duration string with units.
pub(super) fn parse_duration_text(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Duration::ZERO);
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = parse_unsigned_duration(body)?;
    // Go accepts "-0s"; only a real negative amount is an error.
    if negative && !magnitude.is_zero() {
        return Err(DurationError::Negative);
    }
    Ok(magnitude)
}

fn parse_unsigned_duration(body: &str) -> Result<Duration, DurationError> {
    if body.is_empty() {
        return Err(DurationError::Invalid);
    }
    if body.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits can fail to parse here by being too many of them.
        return body
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::TooLarge);
    }
    if body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // A unitless decimal such as "1.5" is seconds, like a JSON 1.5.
        return parse_go_duration(&format!("{body}s"));
    }
    // humantime covers Go's syntax plus spaces and long unit names, but only
    // takes fractions that divide evenly ("1.5h" yes, "1.333h" no), so fall
    // back to a Go-exact parser for what it rejects.
    humantime::parse_duration(body).or_else(|_| parse_go_duration(body))
}

/// Go's `time.ParseDuration` for unsigned input, plus Vault's `d` (days):
/// a sequence of `<decimal><unit>` with units ns, us, µs, μs, ms, s, m, h, d.
/// Fractions are exact to the nanosecond and truncated beyond it, as in Go.
fn parse_go_duration(mut rest: &str) -> Result<Duration, DurationError> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    // More fraction digits than this cannot change a nanosecond count for any
    // unit up to a day, and keeps the arithmetic below far from overflow.
    const MAX_FRACTION_DIGITS: usize = 18;

    if rest.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(tail) => tail.split_at(tail.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(DurationError::Invalid);
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            _ => return Err(DurationError::Invalid),
        };

        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| DurationError::TooLarge)?
        };
        let frac_digits = &frac_digits[..frac_digits.len().min(MAX_FRACTION_DIGITS)];
        let frac_nanos = if frac_digits.is_empty() {
            0
        } else {
            let numerator: u128 = frac_digits.parse().map_err(|_| DurationError::Invalid)?;
            let len = u32::try_from(frac_digits.len()).map_err(|_| DurationError::Invalid)?;
            numerator * unit_nanos / 10u128.pow(len)
        };
        total = whole
            .checked_mul(unit_nanos)
            .and_then(|n| n.checked_add(frac_nanos))
            .and_then(|n| n.checked_add(total))
            .ok_or(DurationError::TooLarge)?;
        rest = next;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| DurationError::TooLarge)?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| DurationError::TooLarge)?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::super::coerce::tests::{assert_accepts, assert_rejects};
    use super::super::*;
    use serde_json::json;

    #[test]
    fn duration_coercion() {
        let secs = |s: u64| FieldValue::Duration(Duration::from_secs(s));
        let millis = |ms: u64| FieldValue::Duration(Duration::from_millis(ms));
        assert_accepts(
            FieldType::Duration,
            vec![
                (json!(90), secs(90)),
                (json!(0), secs(0)),
                (json!(1.5), millis(1_500)),
                (json!("90"), secs(90)),
                (json!(" 90 "), secs(90)),
                (json!(""), secs(0)),
                (json!("0"), secs(0)),
                (json!("90s"), secs(90)),
                (json!("1h30m"), secs(5_400)),
                (json!("1h 30m"), secs(5_400)),
                (json!("2d"), secs(172_800)),
                (json!("1d12h"), secs(129_600)),
                (json!("1.5h"), secs(5_400)),
                (json!("0.5s"), millis(500)),
                (json!("1.333h"), millis(4_798_800)),
                (json!(".5m"), secs(30)),
                (json!("1.5"), millis(1_500)),
                (json!("250ms"), millis(250)),
                (
                    json!("1.5ns"),
                    FieldValue::Duration(Duration::from_nanos(1)),
                ),
                (
                    json!("3\u{3bc}s"),
                    FieldValue::Duration(Duration::from_micros(3)),
                ),
                (
                    json!("3\u{b5}s"),
                    FieldValue::Duration(Duration::from_micros(3)),
                ),
                (json!("+5s"), secs(5)),
                (json!("-0s"), secs(0)),
                (json!("2562047h"), secs(2_562_047 * 3_600)),
            ],
        );
        assert_rejects(
            FieldType::Duration,
            vec![
                (
                    json!("abc"),
                    "\"abc\" is not a duration (use e.g. \"90s\", \"1h30m\", \"2d\" or a number of seconds)",
                ),
                (json!("5x"), "is not a duration"),
                (json!("1h-5m"), "is not a duration"),
                (json!("."), "is not a duration"),
                (json!("-"), "is not a duration"),
                (json!("-abc"), "is not a duration"),
                (json!("-5s"), "\"-5s\" must not be negative"),
                (json!("-5"), "must not be negative"),
                (json!(-5), "-5 must not be negative"),
                (json!(-0.5), "must not be negative"),
                (json!("18446744073709551616"), "too large"),
                (json!("2562048h"), "too large"),
                (json!(u64::MAX), "too large"),
                (json!(1e300), "too large"),
                (
                    json!("99999999999999999999999999999999999999999d"),
                    "too large",
                ),
                (json!(true), "is not a duration"),
                (json!(["1s"]), "is not a duration"),
            ],
        );
    }
}
