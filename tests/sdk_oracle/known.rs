//! The known differences from HashiCorp's sdk, each with its reason.
//!
//! A difference is explained by the first entry whose oracle and field type match and whose
//! `applies` holds. Each `applies` is narrow: it looks at the input's shape *and* at what
//! both sides made of it, so a new kind of difference is not swallowed by an old entry.
//! Almost all are deliberate: ours rejects what Go silently turns into something else, or
//! accepts a few more spellings. One is not (`serde_json float parsing`): see its reason.

use serde_json::Value;

use crate::{Diff, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oracle {
    Ttl,
    Duration,
    Field,
}

pub struct Known {
    pub name: &'static str,
    /// The oracles it applies to.
    pub oracles: &'static [Oracle],
    /// The field types it applies to (`Diff::kind`); empty for all.
    pub kinds: &'static [&'static str],
    /// Why ours differs (printed when the entry goes stale).
    pub reason: &'static str,
    /// Whether this entry explains the difference.
    pub applies: fn(&Diff) -> bool,
}

impl Known {
    pub fn explains(&self, d: &Diff) -> bool {
        self.oracles.contains(&d.oracle)
            && (self.kinds.is_empty() || self.kinds.contains(&d.kind.as_str()))
            && (self.applies)(d)
    }
}

use Oracle::{Duration as D, Field as F};

pub const KNOWN: &[Known] = &[
    Known {
        name: "null is not provided",
        oracles: &[F],
        kinds: &[],
        reason: "GetOkErr decodes a JSON null with mapstructure into the type's zero value and \
                 reports it as set (\"\", 0, false, [], {}), except for durations; ours treats \
                 null as \"not provided\" for every type, so `{\"ttl\": null}` or \
                 `{\"name\": null}` never overwrites a stored value with a zero",
        applies: |d| d.value == Some(Value::Null) && d.ours == Outcome::NotSet,
    },
    Known {
        name: "integers beyond 2^53 are kept exact",
        oracles: &[F],
        kinds: &[],
        reason: "json.Unmarshal makes every number a float64, so a plugin in Go sees \
                 9007199254740993 as 9007199254740992 (and 9223372036854775807 as an int \
                 overflow); serde_json keeps integers as i64/u64, so ours sees the number sent",
        applies: |d| {
            d.value.as_ref().is_some_and(contains_big_int)
                && !d.go.is_rejected()
                && !d.ours.is_rejected()
        },
    },
    Known {
        name: "float formatting ties",
        oracles: &[F],
        kinds: &["string", "comma_string_slice", "kv_pairs"],
        reason: "both print a float64 in its shortest round-tripping digits, but when two \
                 shortest candidates are equally close (782893144078782.25 → \".2\" or \".3\") \
                 Go's strconv and Rust's formatter pick different ones; both parse back to the \
                 same float64",
        applies: |d| {
            differing_leaves(d)
                .is_some_and(|pairs| pairs.iter().all(|(g, o)| ulps(g, o) == Some(0)))
        },
    },
    Known {
        name: "negative durations are rejected",
        oracles: &[D, F],
        kinds: &["duration"],
        reason: "ParseDurationSecond is signed and TypeDurationSecond rejects only results of \
                 -1 s or less (int(-0.5) is 0); ours is only used for TypeDurationSecond and \
                 rejects any negative input, as a TTL cannot be negative",
        applies: |d| {
            rejected_with(&d.ours, "must not be negative")
                && d.go.value().and_then(Value::as_i64).is_some_and(|n| n <= 0)
        },
    },
    Known {
        name: "fractional JSON seconds are kept",
        oracles: &[D],
        kinds: &[],
        reason: "ParseDurationSecond converts a float to a whole Duration count before \
                 scaling, so 1.5 is 1 s and 0.9 is 0; ours keeps 1.5 s. FieldData users get \
                 whole seconds either way (the field oracle agrees on int(dur.Seconds()))",
        applies: |d| {
            let fractional = d
                .value
                .as_ref()
                .and_then(Value::as_f64)
                .is_some_and(|f| f.fract() != 0.0);
            match (d.go.value().and_then(Value::as_i64), d.ours.value()) {
                (Some(g), Some(o)) => {
                    fractional
                        && o.as_i64()
                            .is_some_and(|o| o / 1_000_000_000 * 1_000_000_000 == g)
                }
                _ => false,
            }
        },
    },
    Known {
        name: "surrounding whitespace is trimmed",
        oracles: &[D, F],
        kinds: &["duration", "int", "float", "bool"],
        reason: "strconv.Parse* and time.ParseDuration refuse \" 90\" or \"true \"; ours trims \
                 the text first (copy-paste and CLI quoting leave such spaces)",
        applies: |d| {
            d.go.is_rejected()
                && d.ours.value().is_some()
                && d.value
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| s != s.trim())
        },
    },
    Known {
        name: "a decimal without a unit is seconds",
        oracles: &[D, F],
        kinds: &["duration"],
        reason: "\"90\" is seconds in both, but Go refuses \"1.5\" (\"missing unit\"); ours \
                 reads it as 1.5 s, like the JSON number 1.5",
        applies: |d| {
            d.go.is_rejected()
                && d.ours.value().is_some()
                && d.value.as_ref().and_then(Value::as_str).is_some_and(|s| {
                    let body = s.trim().trim_start_matches(['+', '-']);
                    body.contains('.')
                        && !body.is_empty()
                        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                })
        },
    },
    Known {
        name: "humantime's wider duration syntax",
        oracles: &[D, F],
        kinds: &["duration"],
        reason: "ours parses with the humantime crate, which also takes unit names (sec, min, \
                 hr, hour, days, w, M = month, y = year), spaces between parts, and d combined \
                 with other units or fractions (\"1d12h\", \"1.5d\"); Go accepts only \
                 time.ParseDuration's units or a whole number followed by d",
        applies: |d| {
            d.go.is_rejected()
                && d.ours.value().is_some()
                && d.value
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(uses_wider_duration_syntax)
        },
    },
    Known {
        name: "fractional numbers are not integers",
        oracles: &[F],
        kinds: &["int"],
        reason: "mapstructure truncates 2.5 to 2 without a word; ours rejects it",
        applies: |d| {
            let f = d.value.as_ref().and_then(Value::as_f64);
            rejected_with(&d.ours, "is not an integer")
                && f.is_some_and(|f| f.fract() != 0.0)
                && d.go.value().and_then(Value::as_i64) == f.map(|f| f.trunc() as i64)
        },
    },
    Known {
        name: "numbers outside int64 are rejected",
        oracles: &[F],
        kinds: &["int"],
        reason: "mapstructure converts an out-of-range float64 with int64(f), which on amd64 \
                 yields -9223372036854775808 for 1e19 or 1e300; ours rejects them",
        applies: |d| {
            rejected_with(&d.ours, "out of range")
                && d.go.value().is_some()
                && d.value
                    .as_ref()
                    .and_then(Value::as_f64)
                    .is_some_and(|f| f.abs() >= 9_223_372_036_854_775_808.0)
        },
    },
    Known {
        name: "integer strings are decimal",
        oracles: &[F],
        kinds: &["int"],
        reason: "mapstructure parses strings with strconv.ParseInt(s, 0, 64): \"0x10\" is 16, \
                 \"1_000\" is 1000, \"010\" is 8 (octal) and \"089\" an error; ours reads \
                 decimal only, so \"010\" is 10, \"089\" is 89 and prefixes are refused",
        applies: |d| {
            let Some(text) = d.value.as_ref().and_then(Value::as_str) else {
                return false;
            };
            let digits = text.trim_start_matches(['+', '-']);
            let go_syntax = digits.contains('_') || (digits.len() > 1 && digits.starts_with('0'));
            let decimal = text.parse::<i64>().ok().map(Value::from);
            go_syntax && (d.ours.is_rejected() || d.ours.value() == decimal.as_ref())
        },
    },
    Known {
        name: "booleans are not numbers",
        oracles: &[F],
        kinds: &["int", "float"],
        reason: "mapstructure's weak decoding makes true 1 and false 0; ours rejects a boolean \
                 where a number is expected",
        applies: |d| {
            matches!(d.value, Some(Value::Bool(_)))
                && d.ours.is_rejected()
                && d.go.value().is_some()
        },
    },
    Known {
        name: "only 0 and 1 are boolean numbers",
        oracles: &[F],
        kinds: &["bool"],
        reason: "mapstructure makes any non-zero number true (2, -0.5, 1e300); ours accepts \
                 only 0 and 1",
        applies: |d| {
            d.value
                .as_ref()
                .and_then(Value::as_f64)
                .is_some_and(|f| f != 0.0 && f != 1.0)
                && d.ours.is_rejected()
                && d.go.value() == Some(&Value::Bool(true))
        },
    },
    Known {
        name: "floats must be finite",
        oracles: &[F],
        kinds: &["float"],
        reason: "strconv.ParseFloat accepts \"nan\", \"inf\", \"Infinity\"; ours rejects values \
                 that cannot be stored as JSON or compared",
        applies: |d| {
            rejected_with(&d.ours, "not a finite number")
                && d.go
                    .value()
                    .and_then(float_of)
                    .is_some_and(|f| !f.is_finite())
        },
    },
    Known {
        name: "float strings are plain decimals",
        oracles: &[F],
        kinds: &["float"],
        reason: "strconv.ParseFloat also takes Go literal syntax (\"1_000\", hex \"0x1p-2\"); \
                 Rust's f64 parser, which ours uses, does not",
        applies: |d| {
            d.ours.is_rejected()
                && d.go.value().is_some()
                && d.value
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains('_') || s.to_ascii_lowercase().contains("0x"))
        },
    },
    Known {
        name: "a JSON boolean is true/false, not 1/0",
        oracles: &[F],
        kinds: &["string", "kv_pairs"],
        reason: "mapstructure turns a boolean into the string \"1\" or \"0\"; ours keeps its \
                 JSON spelling \"true\"/\"false\", which is what the caller wrote",
        applies: |d| {
            d.value.as_ref().is_some_and(contains_bool)
                && differing_leaves(d)
                    .is_some_and(|pairs| pairs.iter().all(|(g, o)| bool_spelling(g, o)))
        },
    },
    Known {
        name: "comma lists drop empty elements",
        oracles: &[F],
        kinds: &["comma_string_slice"],
        reason: "ParseCommaStringSlice keeps empty elements (\"a,,b\" has 3, \" \" is [\"\"]); \
                 ours drops them, as an empty model or policy name is never meant. (The kept \
                 elements may also show the float parsing difference above.)",
        applies: |d| match (d.go.value(), d.ours.value()) {
            (Some(Value::Array(g)), Some(Value::Array(o))) => {
                let kept: Vec<&Value> = g.iter().filter(|v| v.as_str() != Some("")).collect();
                kept.len() < g.len()
                    && kept.len() == o.len()
                    && kept
                        .iter()
                        .zip(o)
                        .all(|(g, o)| *g == o || ulps(g, o).is_some_and(|n| n <= 1))
            }
            _ => false,
        },
    },
    Known {
        name: "comma lists hold only strings and numbers",
        oracles: &[F],
        kinds: &["comma_string_slice"],
        reason: "mapstructure makes true \"1\", null \"\" and {} an empty list; ours rejects \
                 booleans, nulls and objects in a list of names",
        applies: |d| {
            d.ours.is_rejected()
                && d.go.value().is_some()
                && d.value.as_ref().is_some_and(|v| match v {
                    Value::Bool(_) | Value::Object(_) => true,
                    Value::Array(items) => items.iter().any(|i| i.is_boolean() || i.is_null()),
                    _ => false,
                })
        },
    },
    Known {
        name: "key=value strings are split on commas and trimmed",
        oracles: &[F],
        kinds: &["kv_pairs"],
        reason: "Go splits each string only at its first '=' and keeps spaces, so \
                 \"a=1,b=2\" is {\"a\": \"1,b=2\"} and \" x =1\" has the key \" x \"; ours \
                 splits a string on commas and trims keys and values, so \"a=1,b=2\" is two \
                 pairs (and \"a=1,b\" is an error naming \"b\")",
        applies: |d| {
            d.go.value().is_some()
                && d.value.as_ref().is_some_and(|v| {
                    let has = |s: &str| s.contains(',') || s.split('=').any(|p| p != p.trim());
                    match v {
                        Value::String(s) => has(s),
                        Value::Array(items) => items.iter().any(|i| i.as_str().is_some_and(has)),
                        _ => false,
                    }
                })
        },
    },
    Known {
        name: "blank key=value entries are skipped",
        oracles: &[F],
        kinds: &["kv_pairs"],
        reason: "Go rejects a blank entry (\"\", \" \", \",\", or \"\" in a list) as an \
                 invalid key pair; ours skips blank entries (a trailing comma, an empty CLI \
                 value), so \"\" is an empty map and [\"\", \"k=v\"] is {\"k\": \"v\"}",
        applies: |d| {
            let blank_pair = match &d.go {
                Outcome::Rejected(e) => e
                    .strip_prefix("invalid key pair \"")
                    .and_then(|rest| rest.strip_suffix('"'))
                    .is_some_and(|pair| pair.chars().all(|c| c == ',' || c.is_whitespace())),
                _ => false,
            };
            blank_pair && d.ours.value().is_some()
        },
    },
    Known {
        name: "key=value lists hold only strings",
        oracles: &[F],
        kinds: &["kv_pairs"],
        reason: "mapstructure lifts a list holding one object into that object and decodes \
                 [null] to a nil map; ours accepts only key=value strings in a list",
        applies: |d| {
            d.ours.is_rejected()
                && !d.go.is_rejected()
                && d.value
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|items| items.iter().any(|i| !i.is_string()))
        },
    },
    Known {
        name: "key=value objects need keys and scalar values",
        oracles: &[F],
        kinds: &["kv_pairs"],
        reason: "mapstructure accepts an empty key and makes a null value \"\"; ours rejects \
                 both",
        applies: |d| {
            d.ours.is_rejected()
                && d.go.value().is_some()
                && d.value
                    .as_ref()
                    .and_then(Value::as_object)
                    .is_some_and(|o| o.iter().any(|(k, v)| k.is_empty() || v.is_null()))
        },
    },
    Known {
        name: "a string holding a JSON object is that object",
        oracles: &[F],
        kinds: &["object"],
        reason: "TypeMap takes only an object (mapstructure: \"expected a map, got 'string'\"); \
                 ours also takes a string holding one, as the CLI sends `x='{\"a\":1}'`, and a \
                 blank string as {}",
        applies: |d| {
            d.go.is_rejected()
                && d.ours.value().is_some()
                && matches!(d.value, Some(Value::String(_)))
        },
    },
    Known {
        name: "a map is an object, not a list",
        oracles: &[F],
        kinds: &["object"],
        reason: "mapstructure decodes [] to {}, [null] to a nil map and [{\"a\":1}] to \
                 {\"a\":1}; ours rejects a list where an object is expected",
        applies: |d| {
            matches!(d.value, Some(Value::Array(_))) && d.ours.is_rejected() && !d.go.is_rejected()
        },
    },
];

fn rejected_with(o: &Outcome, fragment: &str) -> bool {
    matches!(o, Outcome::Rejected(e) if e.contains(fragment))
}

/// An integer that a float64 cannot hold exactly, anywhere in `v`.
fn contains_big_int(v: &Value) -> bool {
    const LIMIT: u64 = 1 << 53;
    match v {
        Value::Number(n) => {
            n.as_i64().is_some_and(|i| i.unsigned_abs() > LIMIT)
                || n.as_u64().is_some_and(|u| u > LIMIT)
        }
        Value::Array(items) => items.iter().any(contains_big_int),
        Value::Object(o) => o.values().any(contains_big_int),
        _ => false,
    }
}

/// The float a canonical leaf stands for: a number, a numeric string or `{"bits": hex}`.
fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Object(o) => o
            .get("bits")
            .and_then(Value::as_str)
            .and_then(|b| u64::from_str_radix(b, 16).ok())
            .map(f64::from_bits),
        _ => None,
    }
}

/// How many float64 steps apart the numbers two leaves stand for are, if both are numbers.
fn ulps(a: &Value, b: &Value) -> Option<u64> {
    match (float_of(a), float_of(b)) {
        (Some(x), Some(y)) if x.is_finite() && y.is_finite() && x.signum() == y.signum() => {
            Some(x.to_bits().abs_diff(y.to_bits()))
        }
        _ => None,
    }
}

/// Go's "1"/"0" against ours "true"/"false".
fn bool_spelling(g: &Value, o: &Value) -> bool {
    matches!(
        (g.as_str(), o.as_str()),
        (Some("1"), Some("true")) | (Some("0"), Some("false"))
    )
}

fn contains_bool(v: &Value) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::Array(items) => items.iter().any(contains_bool),
        Value::Object(o) => o.values().any(contains_bool),
        _ => false,
    }
}

/// When both sides accepted values of the same shape (same list lengths, same object keys),
/// the pairs of leaves (go, ours) that differ; `None` otherwise.
fn differing_leaves(d: &Diff) -> Option<Vec<(Value, Value)>> {
    fn walk(g: &Value, o: &Value, out: &mut Vec<(Value, Value)>) -> bool {
        let leaf = |v: &Value| is_float_form(v) || !(v.is_array() || v.is_object());
        match (g, o) {
            _ if leaf(g) && leaf(o) => {
                if g != o {
                    out.push((g.clone(), o.clone()));
                }
                true
            }
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| walk(x, y, out))
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, x)| b.get(k).is_some_and(|y| walk(x, y, out)))
            }
            _ => false,
        }
    }
    let (g, o) = (d.go.value()?, d.ours.value()?);
    let mut out = Vec::new();
    (walk(g, o, &mut out) && !out.is_empty()).then_some(out)
}

/// The `{"bits": ...}` form of a float.
fn is_float_form(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("bits"))
}

/// Whether a duration string uses syntax beyond Go's: a unit time.ParseDuration lacks, a
/// space inside, or `d` anywhere but after a whole number that ends the string.
fn uses_wider_duration_syntax(s: &str) -> bool {
    const GO_UNITS: &[&str] = &["ns", "us", "\u{b5}s", "\u{3bc}s", "ms", "s", "m", "h"];
    let body = s.trim().trim_start_matches(['+', '-']);
    if body.contains(char::is_whitespace) {
        return true;
    }
    let units: Vec<&str> = body
        .split(|c: char| c.is_ascii_digit() || c == '.')
        .filter(|u| !u.is_empty())
        .collect();
    let whole_days = units == ["d"] && body[..body.len() - 1].bytes().all(|b| b.is_ascii_digit());
    !whole_days && units.iter().any(|u| !GO_UNITS.contains(u))
}
