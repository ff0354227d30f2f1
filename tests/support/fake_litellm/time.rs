//! Keys, hashes, durations and timestamps as LiteLLM writes them.

use super::*;

/// `sk-` + 22 URL-safe characters (16 random bytes), like `secrets.token_urlsafe(16)`.
pub(crate) fn new_key() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = *uuid::Uuid::new_v4().as_bytes();
    }
    format!("sk-{}", base64url(&bytes))
}

pub(crate) fn base64url(bytes: &[u8]) -> String {
    pub(crate) const ALPHABET: &[u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

pub(crate) fn key_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

pub(crate) fn sha256_hex(s: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// LiteLLM's `is_valid_api_key`: an `sk-` key or a 64-hex hash, 3–100 characters.
pub(crate) fn is_valid_api_key(key: &str) -> bool {
    if !(3..=100).contains(&key.len()) {
        return false;
    }
    let sk = key.strip_prefix("sk-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let hash = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    sk || hash
}

/// LiteLLM's `duration_in_seconds`: `re.match(r"(\d+)(mo|[smhdw]?)")`, anchored at the start
/// only (so `1h30m` is one hour), plus the word aliases. Errors carry LiteLLM's messages.
pub(crate) fn duration_seconds(raw: &str, now: SystemTime) -> Result<u64, String> {
    let normalized = match raw.trim().to_lowercase().as_str() {
        "hourly" => "1h".to_owned(),
        "daily" => "24h".to_owned(),
        "weekly" => "7d".to_owned(),
        "monthly" => "30d".to_owned(),
        _ => raw.to_owned(),
    };
    let digits: String = normalized
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return Err("Invalid duration format".to_owned());
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| "Invalid duration format".to_owned())?;
    let rest = &normalized[digits.len()..];
    let unit = if rest.starts_with("mo") {
        "mo"
    } else {
        rest.get(..1).filter(|u| "smhdw".contains(*u)).unwrap_or("")
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "mo" => return Ok(months_in_seconds(now, value)),
        _ => return Err(format!("Unsupported duration unit, passed duration: {raw}")),
    };
    Ok(value.saturating_mul(mult))
}

/// Seconds from `now` to the same day-of-month `months` later (clamped to the month's end).
pub(crate) fn months_in_seconds(now: SystemTime, months: u64) -> u64 {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    let total = i64::from(m) - 1 + i64::try_from(months).unwrap_or(0);
    let (ny, nm) = (
        y + total.div_euclid(12),
        u32::try_from(total.rem_euclid(12)).unwrap_or(0) + 1,
    );
    let nd = d.min(days_in_month(ny, nm));
    let new_days = days_from_civil(ny, nm, nd);
    u64::try_from(new_days - days).unwrap_or(0) * 86_400
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-date algorithms.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Truncates to whole milliseconds, LiteLLM's database precision.
pub(crate) fn to_millis(t: SystemTime) -> SystemTime {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `2026-11-22T08:07:03.891396Z`, or `2026-11-22T08:07:03Z` on a whole second: Python's
/// `isoformat()` leaves a zero fraction out, which database times (whole milliseconds) hit
/// once in a thousand.
pub(crate) fn fmt_z(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t)
        .to_string()
        .replace(".000000Z", "Z")
}

/// `2026-11-22T08:07:03.891000+00:00`
pub(crate) fn fmt_offset(t: SystemTime) -> String {
    let z = fmt_z(t);
    format!("{}+00:00", z.trim_end_matches('Z'))
}

/// Python's `str(datetime)`: `2026-11-22 08:06:51.043000+00:00`
pub(crate) fn py_datetime(t: SystemTime) -> String {
    fmt_offset(t).replacen('T', " ", 1)
}
