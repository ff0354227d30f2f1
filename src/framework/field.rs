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

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Number, Value};

/// Largest duration the host can represent: Go's `time.Duration` is an `int64`
/// count of nanoseconds (about 292 years). Larger values are rejected so they
/// cannot overflow later in lease arithmetic or on the Go side.
pub const MAX_DURATION: Duration = Duration::new(9_223_372_036, 854_775_807);

/// Longest rendering of a rejected value quoted in an error message; keeps
/// responses and logs small when a client sends something huge.
const MAX_SHOWN_CHARS: usize = 64;

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
            FieldType::KeyValueMap => ("object", None),
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

    /// The provided string, else the schema default, else `""`.
    pub fn str_or_default(&self, name: &str) -> String {
        match self.get_or_default(name) {
            Some(FieldValue::Str(s)) => s,
            _ => String::new(),
        }
    }

    /// The provided integer, else the schema default, else `0`.
    pub fn int_or_default(&self, name: &str) -> i64 {
        match self.get_or_default(name) {
            Some(FieldValue::Int(i)) => i,
            _ => 0,
        }
    }

    /// The provided boolean, else the schema default, else `false`.
    pub fn bool_or_default(&self, name: &str) -> bool {
        matches!(self.get_or_default(name), Some(FieldValue::Bool(true)))
    }

    /// The provided float, else the schema default, else `0.0`.
    pub fn float_or_default(&self, name: &str) -> f64 {
        match self.get_or_default(name) {
            Some(FieldValue::Float(f)) => f,
            _ => 0.0,
        }
    }

    /// The provided duration, else the schema default, else zero.
    pub fn duration_or_default(&self, name: &str) -> Duration {
        match self.get_or_default(name) {
            Some(FieldValue::Duration(d)) => d,
            _ => Duration::ZERO,
        }
    }

    /// The provided string list, else the schema default, else empty.
    pub fn strings_or_default(&self, name: &str) -> Vec<String> {
        match self.get_or_default(name) {
            Some(FieldValue::Strings(v)) => v,
            _ => Vec::new(),
        }
    }

    /// The provided map, else the schema default, else empty.
    pub fn map_or_default(&self, name: &str) -> BTreeMap<String, String> {
        match self.get_or_default(name) {
            Some(FieldValue::Map(m)) => m,
            _ => BTreeMap::new(),
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

/// Renders rejected input for error messages, hiding it for sensitive fields.
#[derive(Clone, Copy)]
struct Shower {
    sensitive: bool,
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

fn coerce_string(value: &Value, show: Shower) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(number_text(n)),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{} is not a string", show.value(value))),
    }
}

fn coerce_int(value: &Value, show: Shower) -> Result<i64, String> {
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

fn coerce_bool(value: &Value, show: Shower) -> Result<bool, String> {
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

fn coerce_float(value: &Value, show: Shower) -> Result<f64, String> {
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

/// Why a duration string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DurationError {
    Invalid,
    Negative,
    TooLarge,
}

fn coerce_duration(value: &Value, show: Shower) -> Result<Duration, String> {
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

/// `parseutil.ParseDurationSecond` for strings: empty is zero, a bare number
/// is seconds, anything else is a duration string with units.
fn parse_duration_text(text: &str) -> Result<Duration, DurationError> {
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

fn coerce_strings(value: &Value, show: Shower) -> Result<Vec<String>, String> {
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

fn coerce_map(value: &Value, show: Shower) -> Result<BTreeMap<String, String>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn coerce(kind: FieldType, value: Value) -> Result<FieldValue, String> {
        Field::new("f", kind, "")
            .coerce(&value)
            .map_err(|e| e.reason)
    }

    fn strings(items: &[&str]) -> FieldValue {
        FieldValue::Strings(items.iter().map(|s| (*s).to_owned()).collect())
    }

    fn map(pairs: &[(&str, &str)]) -> FieldValue {
        FieldValue::Map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            other => panic!("test input must be an object, got {other}"),
        }
    }

    /// Runs a table of accepted inputs for one type.
    fn assert_accepts(kind: FieldType, cases: Vec<(Value, FieldValue)>) {
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
    fn assert_rejects(kind: FieldType, cases: Vec<(Value, &str)>) {
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
        assert_eq!(empty.int_or_default("count"), 3);
        assert!(empty.bool_or_default("enabled"));
        assert_eq!(empty.float_or_default("budget"), 1.5);
        assert_eq!(empty.str_or_default("label"), "none");
        assert_eq!(empty.strings_or_default("models"), vec!["a", "b"]);
        // No schema default: the type's zero value.
        assert_eq!(empty.str_or_default("name"), "");
        assert_eq!(empty.int_or_default("id"), 0);
        assert!(empty.map_or_default("metadata").is_empty());
        // Undeclared names also give zero values.
        assert_eq!(empty.str_or_default("nope"), "");
        assert_eq!(empty.duration_or_default("nope"), Duration::ZERO);
        assert!(!empty.bool_or_default("nope"));
        assert_eq!(empty.float_or_default("nope"), 0.0);

        let set = parse(json!({
            "ttl": 5, "count": 0, "enabled": false, "budget": "0",
            "label": "", "models": "", "metadata": {"k": "v"}
        }))?;
        assert_eq!(set.duration_or_default("ttl"), Duration::from_secs(5));
        assert_eq!(set.int_or_default("count"), 0);
        assert!(!set.bool_or_default("enabled"));
        assert_eq!(set.float_or_default("budget"), 0.0);
        assert_eq!(set.str_or_default("label"), "");
        assert!(set.strings_or_default("models").is_empty());
        assert_eq!(
            set.map_or_default("metadata").get("k").map(String::as_str),
            Some("v")
        );
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

    #[test]
    fn invalid_schema_default_falls_back_to_zero() -> Result<(), FieldError> {
        static BAD: &[Field] = &[
            Field::new("d", FieldType::Duration, "").default_value(DefaultValue::Str("soon")),
            Field::new("n", FieldType::Int, "").default_value(DefaultValue::Float(0.5)),
        ];
        let data = FieldData::parse(BAD, Map::new())?;
        assert_eq!(data.duration_or_default("d"), Duration::ZERO);
        assert_eq!(data.int_or_default("n"), 0);
        assert_eq!(data.get_or_default("d"), None);
        Ok(())
    }
}
