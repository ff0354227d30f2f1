//! The coerced input of one request, as handlers read it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Field, FieldError, FieldValue};

/// Request data after coercion against a schema.
pub struct FieldData {
    schema: &'static [Field],
    values: BTreeMap<String, FieldValue>,
    unknown: Vec<String>,
}

impl FieldData {
    /// No input: for requests without a body, such as renew, revoke and rollback.
    pub fn empty() -> FieldData {
        FieldData {
            schema: &[],
            values: BTreeMap::new(),
            unknown: Vec::new(),
        }
    }

    /// Coerce every provided value according to `schema`. Keys not in `schema`
    /// are collected as unknown (not an error). JSON `null` for a known field
    /// counts as "not provided".
    ///
    /// Fields are checked in schema order, so with several bad values the
    /// error always names the first declared one.
    pub fn parse(
        schema: &'static [Field],
        mut raw: Map<String, Value>,
    ) -> Result<FieldData, FieldError> {
        let mut values = BTreeMap::new();
        for field in schema {
            // `remove` leaves only the unknown keys behind; a repeated schema
            // entry finds nothing the second time, so the first one wins.
            match raw.remove(field.name) {
                None | Some(Value::Null) => {}
                Some(value) => {
                    values.insert(field.name.to_owned(), field.coerce(&value)?);
                }
            }
        }
        let mut unknown: Vec<String> = raw.into_iter().map(|(k, _)| k).collect();
        unknown.sort();
        Ok(FieldData {
            schema,
            values,
            unknown,
        })
    }

    /// The schema this data was parsed against.
    pub fn schema(&self) -> &'static [Field] {
        self.schema
    }

    /// The schema entry for `name`, if declared.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.schema.iter().find(|f| f.name == name)
    }

    /// Names of provided keys that the schema does not declare, sorted.
    pub fn unknown_fields(&self) -> &[String] {
        &self.unknown
    }

    /// Vault's warning for ignored keys, e.g. `Endpoint ignored these
    /// unrecognized parameters: [foo bar]` (Go's `%v` of a `[]string`), or
    /// `None` when every key was recognised.
    pub fn unknown_fields_warning(&self) -> Option<String> {
        if self.unknown.is_empty() {
            return None;
        }
        Some(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            self.unknown.join(" ")
        ))
    }

    /// Whether the caller provided `name` (schema defaults do not count).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The caller-provided value of `name`, whatever its type.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.values.get(name)
    }

    /// The caller-provided value, else the schema default.
    pub fn get_or_default(&self, name: &str) -> Option<FieldValue> {
        match self.values.get(name) {
            Some(v) => Some(v.clone()),
            None => self.field(name).and_then(Field::default_field_value),
        }
    }

    /// The provided string value, or `None` if not provided.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(FieldValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The provided integer value, or `None` if not provided.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(FieldValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The provided boolean value, or `None` if not provided.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(FieldValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The provided float value, or `None` if not provided.
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(FieldValue::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// The provided duration, or `None` if not provided.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.values.get(name) {
            Some(FieldValue::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    /// The provided string list, or `None` if not provided.
    pub fn strings(&self, name: &str) -> Option<&[String]> {
        match self.values.get(name) {
            Some(FieldValue::Strings(v)) => Some(v),
            _ => None,
        }
    }

    /// The provided key/value map, or `None` if not provided.
    pub fn map(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        match self.values.get(name) {
            Some(FieldValue::Map(m)) => Some(m),
            _ => None,
        }
    }

    /// The provided JSON object, or `None` if not provided.
    pub fn object(&self, name: &str) -> Option<&Map<String, Value>> {
        match self.values.get(name) {
            Some(FieldValue::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// The provided boolean, else the schema default, else `false`.
    pub fn bool_or_default(&self, name: &str) -> bool {
        matches!(self.get_or_default(name), Some(FieldValue::Bool(true)))
    }

    /// The provided duration, else the schema default, else zero.
    pub fn duration_or_default(&self, name: &str) -> Duration {
        match self.get_or_default(name) {
            Some(FieldValue::Duration(d)) => d,
            _ => Duration::ZERO,
        }
    }

    /// Insert a value directly, overriding any body value: used for path
    /// captures such as `roles/{name}`. The capture is coerced to the declared
    /// type when the schema has the field and the text is valid for it;
    /// otherwise it is stored as a string.
    pub fn insert_capture(&mut self, name: &str, value: String) {
        let coerced = self
            .field(name)
            .and_then(|f| f.coerce(&Value::String(value.clone())).ok());
        self.values
            .insert(name.to_owned(), coerced.unwrap_or(FieldValue::Str(value)));
    }
}

impl fmt::Debug for FieldData {
    /// Like a derived `Debug`, but sensitive values are redacted so request
    /// data can be logged safely.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Values<'a>(&'a FieldData);
        impl fmt::Debug for Values<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut map = f.debug_map();
                for (name, value) in &self.0.values {
                    if self.0.field(name).is_some_and(|fl| fl.sensitive) {
                        map.entry(name, &"<redacted>");
                    } else {
                        map.entry(name, value);
                    }
                }
                map.finish()
            }
        }
        f.debug_struct("FieldData")
            .field("values", &Values(self))
            .field("unknown", &self.unknown)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::field::coerce::tests::map;
    use crate::framework::field::{DefaultValue, FieldType};
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            other => panic!("test input must be an object, got {other}"),
        }
    }

    static SCHEMA: &[Field] = &[
        Field::new("name", FieldType::String, "role name").required(),
        Field::new("ttl", FieldType::Duration, "lease TTL").default_value(DefaultValue::Int(3600)),
        Field::new("max_ttl", FieldType::Duration, "max TTL")
            .default_value(DefaultValue::DurationSecs(7200)),
        Field::new("grace", FieldType::Duration, "grace").default_value(DefaultValue::Str("1m")),
        Field::new("count", FieldType::Int, "count").default_value(DefaultValue::Int(3)),
        Field::new("enabled", FieldType::Bool, "flag").default_value(DefaultValue::Bool(true)),
        Field::new("budget", FieldType::Float, "budget").default_value(DefaultValue::Float(1.5)),
        Field::new("models", FieldType::CommaStringSlice, "models")
            .default_value(DefaultValue::Str("a,b")),
        Field::new("metadata", FieldType::KeyValueMap, "metadata"),
        Field::new("api_key", FieldType::String, "secret").sensitive(),
        Field::new("label", FieldType::String, "label").default_value(DefaultValue::Str("none")),
        Field::new("id", FieldType::Int, "numeric id"),
    ];

    fn parse(value: Value) -> Result<FieldData, FieldError> {
        FieldData::parse(SCHEMA, object(value))
    }

    #[test]
    fn parse_coerces_provided_values() -> Result<(), FieldError> {
        let data = parse(json!({
            "name": "r1",
            "ttl": "1h",
            "count": "7",
            "enabled": "false",
            "budget": 2,
            "models": "x, y",
            "metadata": "team=ml",
        }))?;
        assert_eq!(data.str("name"), Some("r1"));
        assert_eq!(data.duration("ttl"), Some(Duration::from_secs(3600)));
        assert_eq!(data.int("count"), Some(7));
        assert_eq!(data.bool("enabled"), Some(false));
        assert_eq!(data.float("budget"), Some(2.0));
        assert_eq!(
            data.strings("models"),
            Some(&["x".to_owned(), "y".to_owned()][..])
        );
        assert_eq!(data.get("metadata"), Some(&map(&[("team", "ml")])));
        assert_eq!(data.map("metadata").map(BTreeMap::len), Some(1));
        // Wrong-typed accessors find nothing rather than converting.
        assert_eq!(data.int("name"), None);
        assert_eq!(data.str("count"), None);
        assert!(data.unknown_fields().is_empty());
        assert_eq!(data.unknown_fields_warning(), None);
        Ok(())
    }

    #[test]
    fn unset_fields_are_none_and_null_is_not_provided() -> Result<(), FieldError> {
        let data = parse(json!({"name": "r1", "ttl": null, "count": null}))?;
        assert!(data.is_set("name"));
        for name in [
            "ttl", "count", "enabled", "budget", "models", "metadata", "api_key",
        ] {
            assert!(!data.is_set(name), "{name}");
            assert_eq!(data.get(name), None, "{name}");
        }
        assert_eq!(data.duration("ttl"), None);
        assert_eq!(data.int("count"), None);
        assert_eq!(data.bool("enabled"), None);
        assert_eq!(data.float("budget"), None);
        assert_eq!(data.strings("models"), None);
        assert_eq!(data.map("metadata"), None);
        Ok(())
    }

    #[test]
    fn or_default_uses_value_then_schema_default_then_zero() -> Result<(), FieldError> {
        let empty = parse(json!({}))?;
        assert_eq!(empty.duration_or_default("ttl"), Duration::from_secs(3600));
        assert_eq!(
            empty.duration_or_default("max_ttl"),
            Duration::from_secs(7200)
        );
        assert_eq!(empty.duration_or_default("grace"), Duration::from_secs(60));
        assert!(empty.bool_or_default("enabled"));
        assert_eq!(empty.get_or_default("count"), Some(FieldValue::Int(3)));
        assert_eq!(empty.get_or_default("budget"), Some(FieldValue::Float(1.5)));
        assert_eq!(
            empty.get_or_default("label"),
            Some(FieldValue::Str("none".into()))
        );
        assert_eq!(
            empty.get_or_default("models"),
            Some(FieldValue::Strings(vec!["a".into(), "b".into()]))
        );
        // No schema default: nothing, and the typed accessors give the type's zero value.
        assert_eq!(empty.get_or_default("name"), None);
        assert_eq!(empty.get_or_default("metadata"), None);
        // Undeclared names also give zero values.
        assert_eq!(empty.duration_or_default("nope"), Duration::ZERO);
        assert!(!empty.bool_or_default("nope"));
        assert_eq!(empty.get_or_default("nope"), None);

        let set = parse(json!({
            "ttl": 5, "count": 0, "enabled": false, "budget": "0",
            "label": "", "models": "", "metadata": {"k": "v"}
        }))?;
        assert_eq!(set.duration_or_default("ttl"), Duration::from_secs(5));
        assert!(!set.bool_or_default("enabled"));
        assert_eq!(set.get_or_default("count"), Some(FieldValue::Int(0)));
        assert_eq!(set.get_or_default("budget"), Some(FieldValue::Float(0.0)));
        assert_eq!(
            set.get_or_default("label"),
            Some(FieldValue::Str(String::new()))
        );
        assert_eq!(
            set.get_or_default("models"),
            Some(FieldValue::Strings(vec![]))
        );
        assert_eq!(set.get_or_default("metadata"), Some(map(&[("k", "v")])));
        Ok(())
    }

    #[test]
    fn unknown_fields_are_sorted_and_warned_about() -> Result<(), FieldError> {
        let data = parse(json!({"name": "r", "zeta": 1, "alpha": null, "foo": "x"}))?;
        assert_eq!(data.unknown_fields(), ["alpha", "foo", "zeta"]);
        assert_eq!(
            data.unknown_fields_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [alpha foo zeta]")
        );
        assert!(!data.is_set("zeta"));
        Ok(())
    }

    #[test]
    fn parse_reports_the_first_bad_field_in_schema_order() {
        let err = parse(json!({"count": "x", "ttl": "bad", "enabled": "maybe"})).err();
        assert_eq!(err.map(|e| e.field).as_deref(), Some("ttl"));
        let err = parse(json!({"count": "x", "unknown": "bad"})).err();
        assert_eq!(err.map(|e| e.field).as_deref(), Some("count"));
    }

    #[test]
    fn captures_override_body_values_and_follow_the_schema_type() -> Result<(), FieldError> {
        let mut data = parse(json!({"name": "from-body", "id": 1}))?;
        data.insert_capture("name", "from-path".to_owned());
        assert_eq!(data.str("name"), Some("from-path"));
        data.insert_capture("id", "42".to_owned());
        assert_eq!(data.int("id"), Some(42));
        // Invalid for the declared type: kept as text rather than lost.
        data.insert_capture("id", "abc".to_owned());
        assert_eq!(data.int("id"), None);
        assert_eq!(data.get("id"), Some(&FieldValue::Str("abc".to_owned())));
        // Undeclared captures are stored as strings and are not "unknown".
        data.insert_capture("extra", "x".to_owned());
        assert_eq!(data.str("extra"), Some("x"));
        assert!(data.unknown_fields().is_empty());
        Ok(())
    }

    #[test]
    fn debug_output_redacts_sensitive_values() -> Result<(), FieldError> {
        let data = parse(json!({"name": "visible", "api_key": "sk-hidden", "x": 1}))?;
        let text = format!("{data:?}");
        assert!(!text.contains("sk-hidden"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(text.contains("visible"), "{text}");
        assert!(text.contains("\"x\""), "{text}");
        Ok(())
    }

    #[test]
    fn invalid_schema_default_falls_back_to_zero() -> Result<(), FieldError> {
        static BAD: &[Field] = &[
            Field::new("d", FieldType::Duration, "").default_value(DefaultValue::Str("soon")),
            Field::new("n", FieldType::Int, "").default_value(DefaultValue::Float(0.5)),
        ];
        let data = FieldData::parse(BAD, Map::new())?;
        assert_eq!(data.duration_or_default("d"), Duration::ZERO);
        assert_eq!(data.get_or_default("n"), None);
        assert_eq!(data.get_or_default("d"), None);
        Ok(())
    }
}
