//! Lease TTL calculation: an exact port of `framework.CalculateTTL` from
//! Vault's Go `sdk/framework/lease.go`.
//!
//! Secrets engines decide the TTL of a new or renewed lease from the requested
//! increment, the role's TTL / max TTL and the mount's limits. Vault core only
//! sees the result, so the capping rules, the error cases and even the warning
//! texts (which clients display verbatim) must match Go for the plugin to
//! behave like a native one. [`human_duration`] reproduces Go's
//! `time.Duration` formatting used in those warnings.
//!
//! All arithmetic is checked: no input can make these functions panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The host's lease limits for this mount (SystemView `DefaultLeaseTTL` /
/// `MaxLeaseTTL`, which include mount tuning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountLeaseLimits {
    /// TTL used when neither the request nor the backend gives one.
    pub default_ttl: Duration,
    /// Upper bound on any lease's lifetime on this mount.
    pub max_ttl: Duration,
}

/// The inputs of Go's `CalculateTTL` besides the system view; zero means
/// "not set" for every duration, as in Go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlRequest {
    /// The TTL the client asked for (e.g. a renewal increment).
    pub increment: Duration,
    /// The backend's TTL, typically from the role.
    pub backend_ttl: Duration,
    /// Periodic lease period; when set, each renewal gets exactly this TTL.
    pub period: Duration,
    /// The backend's max TTL, typically from the role.
    pub backend_max_ttl: Duration,
    /// An explicit max TTL fixed at issue time.
    pub explicit_max_ttl: Duration,
    /// When the lease was issued; `None` means now (a new lease).
    pub start_time: Option<SystemTime>,
}

/// The TTL to grant, with the warnings Vault would attach to the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalculatedTtl {
    /// The TTL to grant.
    pub ttl: Duration,
    /// Human-readable notes about capping, in Vault's wording.
    pub warnings: Vec<String>,
}

/// Why no TTL can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    /// The effective max TTL is zero (a misconfigured mount).
    #[error("max TTL must be greater than zero")]
    MaxTtlNotPositive,
    /// The lease has already reached its max TTL.
    #[error("past the max TTL, cannot renew")]
    PastMaxTtl,
}

/// Go's `framework.CalculateTTL`, with the clock passed in as `now`.
pub fn calculate_ttl(
    limits: MountLeaseLimits,
    req: TtlRequest,
    now: SystemTime,
) -> Result<CalculatedTtl, TtlError> {
    // TTLs have one-second precision, so Go truncates both instants.
    let now = truncate_to_second(now);
    let start = req.start_time.map_or(now, truncate_to_second);

    // The mount's max applies unless the backend or the lease asks for less.
    let mut max_ttl = limits.max_ttl;
    if !req.backend_max_ttl.is_zero() && req.backend_max_ttl < max_ttl {
        max_ttl = req.backend_max_ttl;
    }
    if !req.explicit_max_ttl.is_zero() && req.explicit_max_ttl < max_ttl {
        max_ttl = req.explicit_max_ttl;
    }
    if max_ttl.is_zero() {
        return Err(TtlError::MaxTtlNotPositive);
    }

    let mut warnings = Vec::new();
    let (mut ttl, max_valid_time) = if !req.period.is_zero() {
        let mut period = req.period;
        if period > max_ttl {
            warnings.push(format!(
                "period of \"{}\" exceeded the effective max_ttl of \"{}\"; period value is capped accordingly",
                human_duration(period),
                human_duration(max_ttl)
            ));
            period = max_ttl;
        }
        // Periodic leases renew forever unless an explicit max was set.
        let cap = if req.explicit_max_ttl.is_zero() {
            None
        } else {
            Some(start.checked_add(req.explicit_max_ttl))
        };
        (period, cap)
    } else {
        let ttl = [req.increment, req.backend_ttl]
            .into_iter()
            .find(|d| !d.is_zero())
            .unwrap_or(limits.default_ttl);
        (ttl, Some(start.checked_add(max_ttl)))
    };

    // `Some(None)` is a cap beyond what SystemTime can hold: no limit in
    // practice, so it is treated like no cap at all.
    if let Some(Some(max_valid_time)) = max_valid_time {
        let max_valid_ttl = match max_valid_time.duration_since(now) {
            Ok(d) if !d.is_zero() => d,
            _ => return Err(TtlError::PastMaxTtl),
        };
        if ttl > max_valid_ttl {
            warnings.push(format!(
                "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                human_duration(ttl),
                human_duration(max_valid_ttl)
            ));
            ttl = max_valid_ttl;
        }
    }

    Ok(CalculatedTtl { ttl, warnings })
}

/// Go's `time.Duration` `String()` with Vault's `humanDuration` trimming:
/// 90s → `1m30s`, 3600s → `1h`, 60s → `1m`, 0 → `0s`, 2764800s → `768h`,
/// 3601s → `1h1s`, 1.5s → `1.5s`, 1.5ms → `1.5ms`.
pub fn human_duration(d: Duration) -> String {
    let mut s = go_duration_string(d);
    // Vault drops a trailing zero seconds ("1h0m0s" → "1h0m"), then zero
    // minutes after the hours wherever they are ("1h0m" → "1h", and also
    // "1h0m1s" → "1h1s"), and nothing else.
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m") {
        s.replace_range(idx + 1..idx + 3, "");
    }
    s
}

/// Go's `time.Duration.String()` for a non-negative duration. Go stops at
/// hours (days vary in length); sub-second values use ns, µs or ms.
fn go_duration_string(d: Duration) -> String {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_SEC {
        let (unit, digits) = match nanos {
            n if n < 1_000 => ("ns", 0),
            n if n < 1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        return format!("{}{unit}", decimal(nanos, digits));
    }
    let secs = nanos / NANOS_PER_SEC;
    let sec_text = decimal(nanos % (60 * NANOS_PER_SEC), 9);
    let minutes = (secs / 60) % 60;
    let hours = secs / 3_600;
    if hours > 0 {
        format!("{hours}h{minutes}m{sec_text}s")
    } else if minutes > 0 {
        format!("{minutes}m{sec_text}s")
    } else {
        format!("{sec_text}s")
    }
}

/// `value / 10^digits` as a decimal without trailing fractional zeros, the
/// way Go's `fmtFrac` + `fmtInt` print it.
fn decimal(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = usize::try_from(digits).unwrap_or(0);
    let frac_text = format!("{frac:0width$}");
    format!("{whole}.{}", frac_text.trim_end_matches('0'))
}

/// Truncates to a whole second, rounding toward the past also before 1970 as
/// Go's `Truncate(time.Second)` does.
fn truncate_to_second(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH
            .checked_add(Duration::from_secs(since.as_secs()))
            .unwrap_or(t),
        Err(e) => {
            let before = e.duration();
            let secs = before
                .as_secs()
                .saturating_add(u64::from(before.subsec_nanos() > 0));
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs))
                .unwrap_or(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
    const MIN: u64 = 60;
    const HOUR: u64 = 3_600;

    /// A fixed "now" with a sub-second part, so truncation matters.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_700_000_000, 900_000_000)
    }

    fn ago(s: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + secs(1_700_000_000 - s))
    }

    const MOUNT: MountLeaseLimits = MountLeaseLimits {
        default_ttl: secs(768 * HOUR),
        max_ttl: secs(768 * HOUR),
    };

    fn capped(ttl: &str, max: &str) -> String {
        format!(
            "TTL of \"{ttl}\" exceeded the effective max_ttl of \"{max}\"; TTL value is capped accordingly"
        )
    }

    #[test]
    fn calculate_ttl_table() {
        let short_mount = MountLeaseLimits {
            default_ttl: secs(HOUR),
            max_ttl: secs(2 * HOUR),
        };
        let cases: Vec<(
            &str,
            MountLeaseLimits,
            TtlRequest,
            Result<CalculatedTtl, TtlError>,
        )> = vec![
            (
                "default from mount",
                short_mount,
                TtlRequest::default(),
                Ok(CalculatedTtl {
                    ttl: secs(HOUR),
                    warnings: vec![],
                }),
            ),
            (
                "backend ttl beats mount default",
                short_mount,
                TtlRequest {
                    backend_ttl: secs(30 * MIN),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(30 * MIN),
                    warnings: vec![],
                }),
            ),
            (
                "increment wins over backend ttl",
                short_mount,
                TtlRequest {
                    increment: secs(10 * MIN),
                    backend_ttl: secs(30 * MIN),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(10 * MIN),
                    warnings: vec![],
                }),
            ),
            (
                "increment above mount max is capped",
                MOUNT,
                TtlRequest {
                    increment: secs(87_600 * HOUR),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(768 * HOUR),
                    warnings: vec![capped("87600h", "768h")],
                }),
            ),
            (
                "mount tuned to 60s max",
                MountLeaseLimits {
                    default_ttl: secs(HOUR),
                    max_ttl: secs(60),
                },
                TtlRequest::default(),
                Ok(CalculatedTtl {
                    ttl: secs(60),
                    warnings: vec![capped("1h", "1m")],
                }),
            ),
            (
                "backend max lowers the mount max",
                short_mount,
                TtlRequest {
                    increment: secs(HOUR),
                    backend_max_ttl: secs(90),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(90),
                    warnings: vec![capped("1h", "1m30s")],
                }),
            ),
            (
                "backend max above the mount max is ignored",
                short_mount,
                TtlRequest {
                    increment: secs(5 * HOUR),
                    backend_max_ttl: secs(10 * HOUR),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(2 * HOUR),
                    warnings: vec![capped("5h", "2h")],
                }),
            ),
            (
                "explicit max lowers further",
                short_mount,
                TtlRequest {
                    backend_ttl: secs(HOUR),
                    backend_max_ttl: secs(50 * MIN),
                    explicit_max_ttl: secs(20 * MIN),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(20 * MIN),
                    warnings: vec![capped("1h", "20m")],
                }),
            ),
            (
                "renew 10h on a lease issued 30s ago with a 2m max",
                MOUNT,
                TtlRequest {
                    increment: secs(10 * HOUR),
                    backend_max_ttl: secs(2 * MIN),
                    start_time: ago(30),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(90),
                    warnings: vec![capped("10h", "1m30s")],
                }),
            ),
            (
                "renew within the remaining max is untouched",
                MOUNT,
                TtlRequest {
                    increment: secs(MIN),
                    backend_max_ttl: secs(2 * MIN),
                    start_time: ago(30),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(MIN),
                    warnings: vec![],
                }),
            ),
            (
                "renew past the max",
                MOUNT,
                TtlRequest {
                    increment: secs(10 * HOUR),
                    backend_max_ttl: secs(2 * MIN),
                    start_time: ago(3 * MIN),
                    ..Default::default()
                },
                Err(TtlError::PastMaxTtl),
            ),
            (
                "renew exactly at the max",
                MOUNT,
                TtlRequest {
                    backend_max_ttl: secs(2 * MIN),
                    start_time: ago(2 * MIN),
                    ..Default::default()
                },
                Err(TtlError::PastMaxTtl),
            ),
            (
                "zero mount max",
                MountLeaseLimits {
                    default_ttl: secs(HOUR),
                    max_ttl: Duration::ZERO,
                },
                TtlRequest {
                    backend_max_ttl: secs(HOUR),
                    ..Default::default()
                },
                Err(TtlError::MaxTtlNotPositive),
            ),
            (
                "period is the ttl, ignoring increment",
                short_mount,
                TtlRequest {
                    period: secs(30 * MIN),
                    increment: secs(5 * MIN),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(30 * MIN),
                    warnings: vec![],
                }),
            ),
            (
                "period above max is capped",
                short_mount,
                TtlRequest {
                    period: secs(3 * HOUR),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(2 * HOUR),
                    warnings: vec![
                        "period of \"3h\" exceeded the effective max_ttl of \"2h\"; \
                         period value is capped accordingly"
                            .to_owned(),
                    ],
                }),
            ),
            (
                "period without explicit max renews past the max",
                short_mount,
                TtlRequest {
                    period: secs(HOUR),
                    start_time: ago(100 * HOUR),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(HOUR),
                    warnings: vec![],
                }),
            ),
            (
                "period with explicit max is capped by remaining time",
                short_mount,
                TtlRequest {
                    period: secs(HOUR),
                    explicit_max_ttl: secs(2 * HOUR),
                    start_time: ago(90 * MIN),
                    ..Default::default()
                },
                Ok(CalculatedTtl {
                    ttl: secs(30 * MIN),
                    warnings: vec![capped("1h", "30m")],
                }),
            ),
            (
                "period with explicit max, past it",
                short_mount,
                TtlRequest {
                    period: secs(HOUR),
                    explicit_max_ttl: secs(HOUR),
                    start_time: ago(2 * HOUR),
                    ..Default::default()
                },
                Err(TtlError::PastMaxTtl),
            ),
            (
                "huge max does not overflow",
                MountLeaseLimits {
                    default_ttl: secs(HOUR),
                    max_ttl: Duration::MAX,
                },
                TtlRequest::default(),
                Ok(CalculatedTtl {
                    ttl: secs(HOUR),
                    warnings: vec![],
                }),
            ),
        ];
        for (name, limits, req, want) in cases {
            assert_eq!(calculate_ttl(limits, req, now()), want, "{name}");
        }
    }

    #[test]
    fn instants_are_truncated_to_whole_seconds() {
        // Start 0.2 s after a second boundary, now 0.9 s after one: with
        // truncation exactly 60 s remain, without it 59.3 s would.
        let base = UNIX_EPOCH + secs(1_000);
        let req = TtlRequest {
            increment: secs(2 * MIN),
            backend_max_ttl: secs(2 * MIN),
            start_time: Some(base + Duration::from_millis(200)),
            ..Default::default()
        };
        let got = calculate_ttl(MOUNT, req, base + secs(60) + Duration::from_millis(900));
        assert_eq!(
            got,
            Ok(CalculatedTtl {
                ttl: secs(60),
                warnings: vec![capped("2m", "1m")]
            })
        );
    }

    #[test]
    fn truncation_before_the_epoch_rounds_down() {
        let cases = [
            (
                UNIX_EPOCH + Duration::from_millis(1_500),
                UNIX_EPOCH + secs(1),
            ),
            (
                UNIX_EPOCH - Duration::from_millis(1_500),
                UNIX_EPOCH - secs(2),
            ),
            (UNIX_EPOCH - secs(3), UNIX_EPOCH - secs(3)),
            (UNIX_EPOCH, UNIX_EPOCH),
        ];
        for (input, want) in cases {
            assert_eq!(truncate_to_second(input), want, "{input:?}");
        }
    }

    #[test]
    fn calculate_ttl_now_uses_the_clock() {
        // A lease issued a minute ago with a 2m max has about a minute left;
        // any other notion of "now" gives a very different answer.
        let req = TtlRequest {
            increment: secs(10 * HOUR),
            backend_max_ttl: secs(2 * MIN),
            start_time: SystemTime::now().checked_sub(secs(MIN)),
            ..Default::default()
        };
        let got = calculate_ttl(MOUNT, req, SystemTime::now()).map(|c| c.ttl);
        assert!(
            matches!(got, Ok(ttl) if (secs(59)..=secs(61)).contains(&ttl)),
            "{got:?}"
        );
    }

    #[test]
    fn human_duration_matches_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (secs(1), "1s"),
            (secs(59), "59s"),
            (secs(60), "1m"),
            (secs(90), "1m30s"),
            (secs(HOUR), "1h"),
            (secs(HOUR + 1), "1h1s"),
            (secs(HOUR + MIN), "1h1m"),
            (secs(2 * HOUR + 30 * MIN), "2h30m"),
            (secs(10 * HOUR + 5), "10h5s"),
            (secs(10 * HOUR + 10 * MIN + 5), "10h10m5s"),
            (secs(768 * HOUR), "768h"),
            (secs(87_600 * HOUR), "87600h"),
            (secs(2_764_800), "768h"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(60_500), "1m0.5s"),
            (Duration::new(HOUR, 500_000_000), "1h0.5s"),
            (Duration::new(1, 1), "1.000000001s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_micros(2), "2µs"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::MAX, "5124095576030431h15.999999999s"),
        ];
        for (input, want) in cases {
            assert_eq!(human_duration(input), want, "{input:?}");
        }
    }

    #[test]
    fn ttl_error_messages_match_vault() {
        assert_eq!(
            TtlError::MaxTtlNotPositive.to_string(),
            "max TTL must be greater than zero"
        );
        assert_eq!(
            TtlError::PastMaxTtl.to_string(),
            "past the max TTL, cannot renew"
        );
    }
}
