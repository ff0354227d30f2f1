//! Weak decoding of each field type, as Go's `mapstructure` does it for a plugin: the CLI
//! sends every value as a string, the HTTP API real JSON types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Number, Value};

use super::MAX_DURATION;
use super::duration::{DurationError, parse_duration_text};

/// Longest rendering of a rejected value quoted in an error message; keeps
/// responses and logs small when a client sends something huge.
const MAX_SHOWN_CHARS: usize = 64;

#[derive(Clone, Copy)]
pub(super) struct Shower {
    pub(super) sensitive: bool,
}

impl Shower {
    /// A JSON rendering of `value`, shortened, or just "value" when sensitive.
    fn value(self, value: &Value) -> String {
        if self.sensitive {
            return "value".to_owned();
        }
        let text = value.to_string();
        if text.chars().count() <= MAX_SHOWN_CHARS {
            return text;
        }
        let mut short: String = text.chars().take(MAX_SHOWN_CHARS).collect();
        short.push('…');
        short
    }

    /// A quoted rendering of a piece of string input.
    fn text(self, text: &str) -> String {
        self.value(&Value::String(text.to_owned()))
    }
}

/// A JSON number as text, the way Go's `strconv` would print it (`2`, `2.5`,
/// `1000000000000000000000`), not in serde_json's exponent form.
fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(f) = n.as_f64() {
        f.to_string()
    } else {
        n.to_string()
    }
}

pub(super) fn coerce_string(value: &Value, show: Shower) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(number_text(n)),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{} is not a string", show.value(value))),
    }
}

pub(super) fn coerce_int(value: &Value, show: Shower) -> Result<i64, String> {
    let not_int = || format!("{} is not an integer", show.value(value));
    let out_of_range = || format!("{} is out of range for an integer", show.value(value));
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            if n.is_u64() {
                return Err(out_of_range());
            }
            let f = n.as_f64().ok_or_else(not_int)?;
            if f.fract() != 0.0 || !f.is_finite() {
                return Err(not_int());
            }
            // 2^63 is exactly representable; i64::MAX is not, so compare
            // against the powers of two rather than casting the bounds.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if !(-LIMIT..LIMIT).contains(&f) {
                return Err(out_of_range());
            }
            // In range and integral, so the cast is exact.
            Ok(f as i64)
        }
        Value::String(s) => {
            let s = s.trim();
            // mapstructure's weak decoding reads an empty string as zero.
            if s.is_empty() {
                return Ok(0);
            }
            s.parse::<i64>().map_err(|e| match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    out_of_range()
                }
                _ => not_int(),
            })
        }
        _ => Err(not_int()),
    }
}

pub(super) fn coerce_bool(value: &Value, show: Shower) -> Result<bool, String> {
    let not_bool = || format!("{} is not a boolean (use true or false)", show.value(value));
    match value {
        Value::Bool(b) => Ok(*b),
        // Exactly the spellings Go's strconv.ParseBool accepts; an empty
        // string is false under mapstructure's weak decoding.
        Value::String(s) => match s.trim() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(not_bool()),
        },
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(not_bool()),
        },
        _ => Err(not_bool()),
    }
}

pub(super) fn coerce_float(value: &Value, show: Shower) -> Result<f64, String> {
    let not_number = || format!("{} is not a number", show.value(value));
    let f = match value {
        Value::Number(n) => n.as_f64().ok_or_else(not_number)?,
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(0.0);
            }
            s.parse::<f64>().map_err(|_| not_number())?
        }
        _ => return Err(not_number()),
    };
    // Rust parses "nan" and "inf" (and overflows to inf); none of those can
    // be stored or compared sensibly.
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!("{} is not a finite number", show.value(value)))
    }
}

pub(super) fn coerce_duration(value: &Value, show: Shower) -> Result<Duration, String> {
    let result = match value {
        Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                Ok(Duration::from_secs(secs))
            } else if n.is_i64() {
                // as_u64 failed, so the integer is negative.
                Err(DurationError::Negative)
            } else {
                match n.as_f64() {
                    Some(f) if f < 0.0 => Err(DurationError::Negative),
                    Some(f) => Duration::try_from_secs_f64(f).map_err(|_| DurationError::TooLarge),
                    None => Err(DurationError::Invalid),
                }
            }
        }
        Value::String(s) => parse_duration_text(s),
        _ => Err(DurationError::Invalid),
    };
    let duration = result.and_then(|d| {
        if d > MAX_DURATION {
            Err(DurationError::TooLarge)
        } else {
            Ok(d)
        }
    });
    duration.map_err(|e| {
        let shown = show.value(value);
        match e {
            DurationError::Invalid => format!(
                "{shown} is not a duration (use e.g. \"90s\", \"1h30m\", \"2d\" or a number of seconds)"
            ),
            DurationError::Negative => format!("{shown} must not be negative"),
            DurationError::TooLarge => format!("{shown} is too large for a duration"),
        }
    })
}

pub(super) fn coerce_strings(value: &Value, show: Shower) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        // Go turns a lone json.Number into its text before splitting.
        Value::Number(n) => Ok(vec![number_text(n)]),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let text = match item {
                    Value::String(s) => s.trim().to_owned(),
                    Value::Number(n) => number_text(n),
                    _ => {
                        return Err(format!("list element {} is not a string", show.value(item)));
                    }
                };
                if !text.is_empty() {
                    out.push(text);
                }
            }
            Ok(out)
        }
        _ => Err(format!(
            "{} is not a comma-separated string or a list of strings",
            show.value(value)
        )),
    }
}

pub(super) fn coerce_map(value: &Value, show: Shower) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match value {
        Value::Object(object) => {
            for (key, item) in object {
                if key.is_empty() {
                    return Err("keys must not be empty".to_owned());
                }
                let text = match item {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => number_text(n),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(format!(
                            "the value of key {} must be a string, number or boolean",
                            show.text(key)
                        ));
                    }
                };
                out.insert(key.clone(), text);
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(entry) => insert_pair(&mut out, entry, show)?,
                    _ => {
                        return Err(format!(
                            "list element {} is not a key=value string",
                            show.value(item)
                        ));
                    }
                }
            }
        }
        Value::String(s) => {
            for entry in s.split(',') {
                insert_pair(&mut out, entry, show)?;
            }
        }
        _ => {
            return Err(format!(
                "{} is not an object or a list of key=value pairs",
                show.value(value)
            ));
        }
    }
    Ok(out)
}

/// Adds one `key=value` entry; blank entries (e.g. a trailing comma) are
/// skipped, and later duplicates win as in Go.
fn insert_pair(
    out: &mut BTreeMap<String, String>,
    entry: &str,
    show: Shower,
) -> Result<(), String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Ok(());
    }
    let Some((key, value)) = entry.split_once('=') else {
        return Err(format!("{} is not a key=value pair", show.text(entry)));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{} has an empty key", show.text(entry)));
    }
    out.insert(key.to_owned(), value.trim().to_owned());
    Ok(())
}

/// `TypeMap`: a JSON object as is. A string must hold one, since the CLI sends every value as
/// a string (`key_settings='{"soft_budget": 1}'`).
pub(super) fn coerce_object(value: &Value, show: Shower) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::String(s) if s.trim().is_empty() => Ok(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("{} is not a JSON object", show.text(s))),
        },
        other => Err(format!("{} is not a JSON object", show.value(other))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::*;
    use serde_json::json;

    pub(in crate::framework::field) fn coerce(
        kind: FieldType,
        value: Value,
    ) -> Result<FieldValue, String> {
        Field::new("f", kind, "")
            .coerce(&value)
            .map_err(|e| e.reason)
    }

    pub(in crate::framework::field) fn strings(items: &[&str]) -> FieldValue {
        FieldValue::Strings(items.iter().map(|s| (*s).to_owned()).collect())
    }

    pub(in crate::framework::field) fn map(pairs: &[(&str, &str)]) -> FieldValue {
        FieldValue::Map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// Runs a table of accepted inputs for one type.
    pub(in crate::framework::field) fn assert_accepts(
        kind: FieldType,
        cases: Vec<(Value, FieldValue)>,
    ) {
        for (input, want) in cases {
            assert_eq!(
                coerce(kind, input.clone()),
                Ok(want),
                "{kind:?} input {input}"
            );
        }
    }

    /// Runs a table of rejected inputs for one type; each reason must contain
    /// the given fragment.
    pub(in crate::framework::field) fn assert_rejects(kind: FieldType, cases: Vec<(Value, &str)>) {
        for (input, fragment) in cases {
            match coerce(kind, input.clone()) {
                Ok(v) => panic!("{kind:?} input {input} was accepted as {v:?}"),
                Err(reason) => assert!(
                    reason.contains(fragment),
                    "{kind:?} input {input}: reason {reason:?} lacks {fragment:?}"
                ),
            }
        }
    }

    #[test]
    fn string_coercion() {
        let s = |v: &str| FieldValue::Str(v.to_owned());
        assert_accepts(
            FieldType::String,
            vec![
                (json!("abc"), s("abc")),
                (json!(" padded "), s(" padded ")),
                (json!(""), s("")),
                (json!(2), s("2")),
                (json!(-7), s("-7")),
                (json!(2.5), s("2.5")),
                (json!(2.0), s("2")),
                (json!(18446744073709551615u64), s("18446744073709551615")),
                (json!(1e21), s("1000000000000000000000")),
                (json!(true), s("true")),
                (json!(false), s("false")),
            ],
        );
        assert_rejects(
            FieldType::String,
            vec![
                (json!(["a"]), "[\"a\"] is not a string"),
                (json!({"a": 1}), "is not a string"),
                (Value::Null, "null is not a string"),
            ],
        );
    }

    #[test]
    fn int_coercion() {
        assert_accepts(
            FieldType::Int,
            vec![
                (json!(2), FieldValue::Int(2)),
                (json!(-2), FieldValue::Int(-2)),
                (json!(2.0), FieldValue::Int(2)),
                (json!(i64::MIN as f64), FieldValue::Int(i64::MIN)),
                (json!(i64::MAX), FieldValue::Int(i64::MAX)),
                (json!("42"), FieldValue::Int(42)),
                (json!(" 42 "), FieldValue::Int(42)),
                (json!("+5"), FieldValue::Int(5)),
                (json!("-5"), FieldValue::Int(-5)),
                (json!(""), FieldValue::Int(0)),
            ],
        );
        assert_rejects(
            FieldType::Int,
            vec![
                (json!(2.5), "2.5 is not an integer"),
                (json!(true), "true is not an integer"),
                (json!("abc"), "\"abc\" is not an integer"),
                (json!("2.0"), "is not an integer"),
                (json!("0x10"), "is not an integer"),
                (json!(u64::MAX), "out of range"),
                (json!(1e20), "out of range"),
                (json!(-(i64::MIN as f64)), "out of range"),
                (json!("9223372036854775808"), "out of range"),
                (json!("-9223372036854775809"), "out of range"),
                (json!([1]), "is not an integer"),
                (json!({}), "is not an integer"),
            ],
        );
    }

    #[test]
    fn bool_coercion() {
        let mut accepted = vec![
            (json!(true), FieldValue::Bool(true)),
            (json!(false), FieldValue::Bool(false)),
            (json!(1), FieldValue::Bool(true)),
            (json!(0), FieldValue::Bool(false)),
            (json!(1.0), FieldValue::Bool(true)),
            (json!(""), FieldValue::Bool(false)),
        ];
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            accepted.push((json!(t), FieldValue::Bool(true)));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            accepted.push((json!(f), FieldValue::Bool(false)));
        }
        assert_accepts(FieldType::Bool, accepted);
        assert_rejects(
            FieldType::Bool,
            vec![
                (json!("yes"), "\"yes\" is not a boolean"),
                (json!("tRUE"), "is not a boolean"),
                (json!(2), "2 is not a boolean"),
                (json!(0.5), "is not a boolean"),
                (json!([true]), "is not a boolean"),
            ],
        );
    }

    #[test]
    fn float_coercion() {
        assert_accepts(
            FieldType::Float,
            vec![
                (json!(2.5), FieldValue::Float(2.5)),
                (json!(3), FieldValue::Float(3.0)),
                (json!("2.5"), FieldValue::Float(2.5)),
                (json!(" -1e3 "), FieldValue::Float(-1000.0)),
                (json!(""), FieldValue::Float(0.0)),
            ],
        );
        assert_rejects(
            FieldType::Float,
            vec![
                (json!("abc"), "\"abc\" is not a number"),
                (json!("nan"), "\"nan\" is not a finite number"),
                (json!("NaN"), "not a finite number"),
                (json!("inf"), "not a finite number"),
                (json!("-infinity"), "not a finite number"),
                (json!("1e999"), "not a finite number"),
                (json!(true), "is not a number"),
                (json!([1.0]), "is not a number"),
            ],
        );
    }

    #[test]
    fn comma_string_slice_coercion() {
        assert_accepts(
            FieldType::CommaStringSlice,
            vec![
                (json!("a,b"), strings(&["a", "b"])),
                (json!(" a , b ,, "), strings(&["a", "b"])),
                (json!(""), strings(&[])),
                (json!("single"), strings(&["single"])),
                (json!(5), strings(&["5"])),
                (
                    json!([" a ", "", "b,c", 3, 1.5]),
                    strings(&["a", "b,c", "3", "1.5"]),
                ),
                (json!([]), strings(&[])),
            ],
        );
        assert_rejects(
            FieldType::CommaStringSlice,
            vec![
                (json!(true), "true is not a comma-separated string"),
                (json!({"a": "b"}), "is not a comma-separated string"),
                (json!(["a", true]), "list element true is not a string"),
                (json!(["a", ["b"]]), "list element [\"b\"] is not a string"),
            ],
        );
    }

    #[test]
    fn key_value_map_coercion() {
        assert_accepts(
            FieldType::KeyValueMap,
            vec![
                (
                    json!({"team": "ml", "n": 2, "on": true}),
                    map(&[("team", "ml"), ("n", "2"), ("on", "true")]),
                ),
                (json!({}), map(&[])),
                (json!(["a=1", "b=x=y"]), map(&[("a", "1"), ("b", "x=y")])),
                (json!("a=1"), map(&[("a", "1")])),
                (json!("a=1, b = 2 ,"), map(&[("a", "1"), ("b", "2")])),
                (json!("a=1,a=2"), map(&[("a", "2")])),
                (json!("empty="), map(&[("empty", "")])),
                (json!(""), map(&[])),
            ],
        );
        assert_rejects(
            FieldType::KeyValueMap,
            vec![
                (json!("abc"), "\"abc\" is not a key=value pair"),
                (json!("a=1,b"), "\"b\" is not a key=value pair"),
                (json!("=v"), "\"=v\" has an empty key"),
                (json!(["a=1", "nope"]), "\"nope\" is not a key=value pair"),
                (
                    json!(["a=1", 2]),
                    "list element 2 is not a key=value string",
                ),
                (
                    json!({"a": {"b": 1}}),
                    "key \"a\" must be a string, number or boolean",
                ),
                (json!({"a": [1]}), "must be a string, number or boolean"),
                (json!({"": "v"}), "keys must not be empty"),
                (json!(5), "5 is not an object or a list of key=value pairs"),
            ],
        );
    }

    #[test]
    fn error_display_names_field_and_reason() {
        let err = Field::new("ttl", FieldType::Duration, "")
            .coerce(&json!("abc"))
            .err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(
                "invalid value for field \"ttl\": \"abc\" is not a duration \
                 (use e.g. \"90s\", \"1h30m\", \"2d\" or a number of seconds)"
            )
        );
    }

    #[test]
    fn sensitive_values_never_appear_in_errors() {
        let secret = "sk-super-secret";
        let cases = [
            (FieldType::Int, json!(secret)),
            (FieldType::Bool, json!(secret)),
            (FieldType::Float, json!(secret)),
            (FieldType::Duration, json!(secret)),
            (FieldType::String, json!([secret])),
            (FieldType::CommaStringSlice, json!([[secret]])),
            (FieldType::KeyValueMap, json!(format!("ok=1,{secret}"))),
            (FieldType::KeyValueMap, json!({ secret: [1] })),
        ];
        for (kind, input) in cases {
            let field = Field::new("api_key", kind, "").sensitive();
            match field.coerce(&input) {
                Ok(v) => panic!("{kind:?} accepted {v:?}"),
                Err(e) => {
                    let text = e.to_string();
                    assert!(!text.contains(secret), "{kind:?} leaked: {text}");
                    assert!(text.contains("\"api_key\""), "{kind:?}: {text}");
                }
            }
        }
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let long = "x".repeat(10_000);
        let err = coerce(FieldType::Int, json!(long))
            .err()
            .unwrap_or_default();
        assert!(err.ends_with("… is not an integer"), "{err}");
        assert!(err.chars().count() < 100, "{err}");
    }

    #[test]
    fn object_coercion() {
        let object = |v: Value| match v {
            Value::Object(m) => FieldValue::Object(m),
            _ => unreachable!(),
        };
        assert_accepts(
            FieldType::Object,
            vec![
                (
                    json!({"a": 1, "b": [true]}),
                    object(json!({"a": 1, "b": [true]})),
                ),
                (
                    json!(r#"{"soft_budget": 0.5}"#),
                    object(json!({"soft_budget": 0.5})),
                ),
                (json!(""), object(json!({}))),
            ],
        );
        assert_rejects(
            FieldType::Object,
            vec![
                (json!("[1]"), "not a JSON object"),
                (json!("a=b"), "not a JSON object"),
                (json!(3), "not a JSON object"),
                (json!([{"a": 1}]), "not a JSON object"),
            ],
        );
    }
}
