//! Field schemas and request-data coercion: the Rust counterpart of
//! `FieldSchema` / `FieldData` in Vault's Go `sdk/framework`.
//!
//! Request data reaches a plugin as a JSON object. The CLI sends every value as
//! a string (`bao write x n=2 b=true`), while the HTTP API sends real JSON
//! types, so the same logical value can arrive in several shapes. Each endpoint
//! declares its [`Field`]s; [`FieldData::parse`] coerces every provided value up
//! front (following Go's `mapstructure` weak decoding and
//! `parseutil.ParseDurationSecond`), so a bad value becomes a single 400 error
//! naming the field and handlers only ever see typed values.
//!
//! Everything here is total: no client input can make it panic, and values of
//! [`Field::sensitive`] fields never appear in error messages or `Debug` output.
//!
//! - this module: the schema ([`Field`], [`FieldType`], [`DefaultValue`]) and what coercion
//!   yields ([`FieldValue`], [`FieldError`]);
//! - [`data`]: [`FieldData`], the coerced input of one request;
//! - `coerce`: the weak decoding of each type; `duration`: Go's duration syntax.

mod coerce;
pub mod data;
mod duration;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Number, Value};

use coerce::{
    Shower, coerce_bool, coerce_duration, coerce_float, coerce_int, coerce_map, coerce_object,
    coerce_string, coerce_strings,
};
pub use data::FieldData;

/// Largest duration the host can represent: Go's `time.Duration` is an `int64`
/// count of nanoseconds (about 292 years). Larger values are rejected so they
/// cannot overflow later in lease arithmetic or on the Go side.
pub const MAX_DURATION: Duration = Duration::new(9_223_372_036, 854_775_807);

/// The type of a field, mirroring Vault's `framework.FieldType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `TypeString`.
    String,
    /// `TypeInt` (64-bit signed).
    Int,
    /// `TypeBool`.
    Bool,
    /// `TypeFloat` (finite values only).
    Float,
    /// `TypeDurationSecond`: a number of seconds or a duration string.
    Duration,
    /// `TypeCommaStringSlice`: a comma-separated string or a list of strings.
    CommaStringSlice,
    /// `TypeKVPairs`: an object, or `key=value` strings.
    KeyValueMap,
    /// `TypeMap`: a JSON object of any values, or (for the CLI) a string holding one.
    Object,
}

impl FieldType {
    /// The OpenAPI `type` and optional `format` Vault publishes for this type.
    pub fn openapi_type(&self) -> (&'static str, Option<&'static str>) {
        match self {
            FieldType::String => ("string", None),
            FieldType::Int => ("integer", None),
            FieldType::Bool => ("boolean", None),
            FieldType::Float => ("number", None),
            FieldType::Duration => ("string", Some("duration")),
            FieldType::CommaStringSlice => ("array", None),
            FieldType::KeyValueMap | FieldType::Object => ("object", None),
        }
    }

    /// The OpenAPI `items.type` for array types (`None` for scalar types).
    pub fn openapi_items_type(&self) -> Option<&'static str> {
        match self {
            FieldType::CommaStringSlice => Some("string"),
            _ => None,
        }
    }
}

impl fmt::Display for FieldType {
    /// The names Go's `FieldType.String()` uses in path help.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::Float => "float",
            FieldType::Duration => "duration (sec)",
            FieldType::CommaStringSlice => "slice",
            FieldType::KeyValueMap => "keypair",
            FieldType::Object => "map",
        })
    }
}

/// A schema default. It is coerced with the field's own rules when used, so an
/// `Int(3600)` or `Str("1h")` default works for a [`FieldType::Duration`] field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// A string default.
    Str(&'static str),
    /// An integer default.
    Int(i64),
    /// A boolean default.
    Bool(bool),
    /// A floating-point default.
    Float(f64),
    /// A duration default, in whole seconds.
    DurationSecs(u64),
}

impl DefaultValue {
    /// The default as JSON, e.g. for the OpenAPI `default` keyword. Durations
    /// are given in seconds, as Vault does; a non-finite float becomes `null`.
    pub fn to_json(&self) -> Value {
        match *self {
            DefaultValue::Str(s) => Value::String(s.to_owned()),
            DefaultValue::Int(i) => Value::from(i),
            DefaultValue::Bool(b) => Value::Bool(b),
            DefaultValue::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            DefaultValue::DurationSecs(s) => Value::from(s),
        }
    }
}

/// One declared request field (Vault's `FieldSchema`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    /// The key in the request data.
    pub name: &'static str,
    /// How provided values are coerced.
    pub kind: FieldType,
    /// Help text, also published in OpenAPI.
    pub description: &'static str,
    /// Value used by the `*_or_default` accessors when the caller gave none.
    pub default: Option<DefaultValue>,
    /// Presence is checked by handlers (e.g. required on create); exposed for
    /// help and OpenAPI.
    pub required: bool,
    /// The value must never be echoed or logged; exposed for OpenAPI
    /// (`x-vault-displaySensitive`).
    pub sensitive: bool,
}

impl Field {
    /// A field with no default that is neither required nor sensitive.
    pub const fn new(name: &'static str, kind: FieldType, description: &'static str) -> Field {
        Field {
            name,
            kind,
            description,
            default: None,
            required: false,
            sensitive: false,
        }
    }

    /// Sets the schema default.
    #[must_use]
    pub const fn default_value(mut self, d: DefaultValue) -> Field {
        self.default = Some(d);
        self
    }

    /// Marks the field as required.
    #[must_use]
    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }

    /// Marks the field as sensitive.
    #[must_use]
    pub const fn sensitive(mut self) -> Field {
        self.sensitive = true;
        self
    }

    /// Coerces one raw JSON value according to this field's type.
    ///
    /// `null` is rejected here; [`FieldData::parse`] treats a `null` as "not
    /// provided" before calling this.
    pub fn coerce(&self, value: &Value) -> Result<FieldValue, FieldError> {
        let show = Shower {
            sensitive: self.sensitive,
        };
        let coerced = match self.kind {
            FieldType::String => coerce_string(value, show).map(FieldValue::Str),
            FieldType::Int => coerce_int(value, show).map(FieldValue::Int),
            FieldType::Bool => coerce_bool(value, show).map(FieldValue::Bool),
            FieldType::Float => coerce_float(value, show).map(FieldValue::Float),
            FieldType::Duration => coerce_duration(value, show).map(FieldValue::Duration),
            FieldType::CommaStringSlice => coerce_strings(value, show).map(FieldValue::Strings),
            FieldType::KeyValueMap => coerce_map(value, show).map(FieldValue::Map),
            FieldType::Object => coerce_object(value, show).map(FieldValue::Object),
        };
        coerced.map_err(|reason| FieldError {
            field: self.name.to_owned(),
            reason,
        })
    }

    /// The schema default coerced to this field's type, if there is one and it
    /// is valid for the type.
    pub fn default_field_value(&self) -> Option<FieldValue> {
        self.default.and_then(|d| self.coerce(&d.to_json()).ok())
    }
}

/// A coerced, typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// From [`FieldType::String`].
    Str(String),
    /// From [`FieldType::Int`].
    Int(i64),
    /// From [`FieldType::Bool`].
    Bool(bool),
    /// From [`FieldType::Float`].
    Float(f64),
    /// From [`FieldType::Duration`]; kept exact, callers truncate as needed.
    Duration(Duration),
    /// From [`FieldType::CommaStringSlice`].
    Strings(Vec<String>),
    /// From [`FieldType::KeyValueMap`].
    Map(BTreeMap<String, String>),
    /// From [`FieldType::Object`].
    Object(serde_json::Map<String, Value>),
}

/// A value that could not be coerced: names the field and the reason. The
/// reason never contains the value of a sensitive field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for field \"{field}\": {reason}")]
pub struct FieldError {
    /// The field's name.
    pub field: String,
    /// Why the value was rejected.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builders_set_flags() {
        let f = Field::new("k", FieldType::String, "d");
        assert_eq!((f.required, f.sensitive, f.default), (false, false, None));
        let f = f
            .required()
            .sensitive()
            .default_value(DefaultValue::Str("x"));
        assert_eq!(
            (f.required, f.sensitive, f.default),
            (true, true, Some(DefaultValue::Str("x")))
        );
        assert_eq!(
            (f.name, f.kind, f.description),
            ("k", FieldType::String, "d")
        );
    }

    #[test]
    fn openapi_types() {
        let cases = [
            (FieldType::String, ("string", None), None),
            (FieldType::Int, ("integer", None), None),
            (FieldType::Bool, ("boolean", None), None),
            (FieldType::Float, ("number", None), None),
            (FieldType::Duration, ("string", Some("duration")), None),
            (FieldType::CommaStringSlice, ("array", None), Some("string")),
            (FieldType::KeyValueMap, ("object", None), None),
        ];
        for (kind, ty, items) in cases {
            assert_eq!(kind.openapi_type(), ty, "{kind:?}");
            assert_eq!(kind.openapi_items_type(), items, "{kind:?}");
        }
    }

    #[test]
    fn display_uses_go_type_names() {
        let cases = [
            (FieldType::String, "string"),
            (FieldType::Int, "int"),
            (FieldType::Bool, "bool"),
            (FieldType::Float, "float"),
            (FieldType::Duration, "duration (sec)"),
            (FieldType::CommaStringSlice, "slice"),
            (FieldType::KeyValueMap, "keypair"),
        ];
        for (kind, name) in cases {
            assert_eq!(kind.to_string(), name);
        }
    }

    #[test]
    fn defaults_as_json() {
        let cases = [
            (DefaultValue::Str("x"), json!("x")),
            (DefaultValue::Int(-3), json!(-3)),
            (DefaultValue::Bool(true), json!(true)),
            (DefaultValue::Float(0.25), json!(0.25)),
            (DefaultValue::Float(f64::NAN), Value::Null),
            (DefaultValue::DurationSecs(3600), json!(3600)),
        ];
        for (default, want) in cases {
            assert_eq!(default.to_json(), want, "{default:?}");
        }
    }
}
