//! When a static role's key is rotated: every `rotation_period`, or at the times of a
//! `rotation_schedule` (5-field cron, UTC, as Vault's sdk/rotation parses it), optionally only
//! within `rotation_window` of each scheduled time.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::engine::error::{Error, Result};

/// The shortest `rotation_period`: rotations are checked every few seconds, and each one costs
/// three LiteLLM calls.
pub const MIN_PERIOD: Duration = Duration::from_secs(60);

/// The shortest `rotation_window`, as in Vault.
pub const MIN_WINDOW: Duration = Duration::from_secs(3600);

/// How a static role's rotations are timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// Every so many seconds after the last rotation.
    Period(u64),
    /// At the times of a cron schedule.
    Schedule {
        /// The pattern, as written.
        cron: String,
        /// Seconds after each scheduled time in which the rotation may still happen; 0 = any
        /// time later (an overdue rotation is never skipped).
        #[serde(default)]
        window: u64,
    },
}

/// What the next rotation is, as of a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Due at this time (possibly already past).
    At(SystemTime),
    /// A scheduled time passed without its window being used: the next one.
    Skipped(SystemTime),
}

impl Rotation {
    /// From the `rotation_period`, `rotation_schedule` and `rotation_window` a write gives
    /// (`None` each when absent), merged with the role's current timing `before`.
    pub fn from_fields(
        period: Option<Duration>,
        schedule: Option<&str>,
        window: Option<Duration>,
        before: Option<&Rotation>,
    ) -> Result<Rotation> {
        let schedule = schedule.map(str::trim).filter(|s| !s.is_empty());
        let rotation = match (period, schedule) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "rotation_period and rotation_schedule are mutually exclusive: give one of them",
                ));
            }
            (Some(period), None) => {
                if period < MIN_PERIOD {
                    return Err(Error::invalid(format!(
                        "rotation_period must be at least {}s, not {}s",
                        MIN_PERIOD.as_secs(),
                        period.as_secs()
                    )));
                }
                Rotation::Period(period.as_secs())
            }
            (None, Some(cron)) => {
                parse_cron(cron)?;
                let window = match (window, before) {
                    (Some(w), _) => w.as_secs(),
                    (None, Some(Rotation::Schedule { window, .. })) => *window,
                    (None, _) => 0,
                };
                Rotation::Schedule {
                    cron: cron.to_string(),
                    window,
                }
            }
            (None, None) => match (before, window) {
                (None, _) => {
                    return Err(Error::invalid(
                        "rotation_period or rotation_schedule is required to create a static role",
                    ));
                }
                (Some(Rotation::Schedule { cron, .. }), Some(w)) => Rotation::Schedule {
                    cron: cron.clone(),
                    window: w.as_secs(),
                },
                (Some(before), _) => before.clone(),
            },
        };
        if let Rotation::Schedule { window, .. } = &rotation {
            if *window != 0 && *window < MIN_WINDOW.as_secs() {
                return Err(Error::invalid(format!(
                    "rotation_window must be at least {}s (or 0 for none), not {window}s",
                    MIN_WINDOW.as_secs()
                )));
            }
        } else if window.is_some_and(|w| !w.is_zero()) {
            return Err(Error::invalid(
                "rotation_window applies only to rotation_schedule, not to rotation_period",
            ));
        }
        Ok(rotation)
    }

    /// The longest time between two rotations, for `grace_period`'s bound: the period, or
    /// the gap after the next scheduled time.
    pub fn shortest_gap(&self, now: SystemTime) -> Duration {
        match self {
            Rotation::Period(secs) => Duration::from_secs(*secs),
            Rotation::Schedule { cron, .. } => {
                let first = next_occurrence(cron, now);
                let second = first.and_then(|t| next_occurrence(cron, t));
                match (first, second) {
                    (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
                    _ => Duration::MAX,
                }
            }
        }
    }

    /// The next rotation after one at `last`, as of `now`.
    pub fn next(&self, last: SystemTime, now: SystemTime) -> Next {
        match self {
            Rotation::Period(secs) => Next::At(last + Duration::from_secs(*secs)),
            Rotation::Schedule { cron, window } => {
                let Some(due) = next_occurrence(cron, last) else {
                    // A pattern that never matches again (validated at write, so not expected):
                    // far away rather than every tick.
                    return Next::At(now + Duration::from_secs(365 * 86400));
                };
                if *window == 0 || now <= due + Duration::from_secs(*window) {
                    return Next::At(due);
                }
                match next_occurrence(cron, now) {
                    Some(later) => Next::Skipped(later),
                    None => Next::At(now + Duration::from_secs(365 * 86400)),
                }
            }
        }
    }

    /// The fields a read shows: `rotation_period` (whole seconds), or `rotation_schedule` and
    /// `rotation_window` when it has one. Consumers key off their presence and types.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        match self {
            Rotation::Period(secs) => {
                out.insert("rotation_period".into(), json!(secs));
            }
            Rotation::Schedule { cron, window } => {
                out.insert("rotation_schedule".into(), json!(cron));
                if *window > 0 {
                    out.insert("rotation_window".into(), json!(window));
                }
            }
        }
        out
    }
}

impl Next {
    /// When, whether or not a time was skipped.
    pub fn time(self) -> SystemTime {
        match self {
            Next::At(t) | Next::Skipped(t) => t,
        }
    }
}

fn parse_cron(pattern: &str) -> Result<Cron> {
    let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
    parser.parse(pattern).map_err(|e| {
        Error::invalid(format!(
            "rotation_schedule {pattern:?} is invalid: {e}; use 5 fields (minute hour day-of-month month day-of-week), in UTC"
        ))
    })
}

/// The first time the pattern matches strictly after `after`.
fn next_occurrence(pattern: &str, after: SystemTime) -> Option<SystemTime> {
    let cron = Cron::from_str(pattern).ok()?;
    let after: DateTime<Utc> = after.into();
    let next = cron.find_next_occurrence(&after, false).ok()?;
    Some(next.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn a_period_or_a_schedule_and_never_both() {
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(
            Rotation::from_fields(hour, None, None, None).unwrap(),
            Rotation::Period(3600)
        );
        let both = Rotation::from_fields(hour, Some("0 * * * *"), None, None).unwrap_err();
        assert!(both.to_string().contains("mutually exclusive"), "{both}");
        let none = Rotation::from_fields(None, None, None, None).unwrap_err();
        assert!(none.to_string().contains("is required"), "{none}");
        let short = Rotation::from_fields(Some(Duration::from_secs(59)), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(short.contains("at least 60s"), "{short}");
        let window_with_period = Rotation::from_fields(hour, None, hour, None).unwrap_err();
        assert!(
            window_with_period
                .to_string()
                .contains("only to rotation_schedule")
        );
        let seconds_field = Rotation::from_fields(None, Some("0 0 * * * *"), None, None)
            .unwrap_err()
            .to_string();
        assert!(seconds_field.contains("5 fields"), "{seconds_field}");
        let small_window =
            Rotation::from_fields(None, Some("0 * * * *"), Some(Duration::from_secs(60)), None)
                .unwrap_err();
        assert!(small_window.to_string().contains("at least 3600s"));
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name_and_switching_kind_drops_the_window() {
        let before = Rotation::Schedule {
            cron: "0 3 * * *".into(),
            window: 7200,
        };
        assert_eq!(
            Rotation::from_fields(None, None, None, Some(&before)).unwrap(),
            before
        );
        assert_eq!(
            Rotation::from_fields(None, Some("0 4 * * *"), None, Some(&before)).unwrap(),
            Rotation::Schedule {
                cron: "0 4 * * *".into(),
                window: 7200
            }
        );
        assert_eq!(
            Rotation::from_fields(Some(Duration::from_secs(600)), None, None, Some(&before))
                .unwrap(),
            Rotation::Period(600)
        );
    }

    #[test]
    fn schedules_run_in_utc_and_a_missed_window_waits_for_the_next_time() {
        let daily = Rotation::Schedule {
            cron: "30 2 * * *".into(),
            window: 0,
        };
        let last = at("2026-12-01T10:00:00Z");
        assert_eq!(daily.next(last, last), Next::At(at("2026-12-02T02:30:00Z")));
        // Overdue without a window: still due at its time (now past).
        let much_later = at("2026-12-05T00:00:00Z");
        assert_eq!(
            daily.next(last, much_later),
            Next::At(at("2026-12-02T02:30:00Z"))
        );
        let windowed = Rotation::Schedule {
            cron: "30 2 * * *".into(),
            window: 3600,
        };
        assert_eq!(
            windowed.next(last, at("2026-12-02T03:00:00Z")),
            Next::At(at("2026-12-02T02:30:00Z"))
        );
        assert_eq!(
            windowed.next(last, at("2026-12-02T04:00:00Z")),
            Next::Skipped(at("2026-12-03T02:30:00Z"))
        );
        assert_eq!(daily.shortest_gap(last), Duration::from_secs(86400));
        let period = Rotation::Period(600);
        assert_eq!(
            period.next(last, last).time(),
            last + Duration::from_secs(600)
        );
        assert_eq!(period.to_json()["rotation_period"], 600);
        assert!(!daily.to_json().contains_key("rotation_window"));
        assert_eq!(windowed.to_json()["rotation_window"], 3600);
    }
}
