//! HashiCorp's framework as the oracle: differential tests of `src/framework` against the Go
//! code a Vault plugin built on `github.com/hashicorp/vault/sdk` v0.25.1 runs.
//!
//! `tests/vault-sdk/cmd/oracle` (Go) generates the cases from a fixed seed plus hand-picked
//! edge cases and computes each result with HashiCorp's code; this test computes ours and
//! compares them exactly, case by case:
//!
//! - **ttl**: `framework.CalculateTTL` vs [`calculate_ttl`]: TTL to the nanosecond, the
//!   warnings text and the error text. Go reads `time.Now()` itself, so every Go case records
//!   the instant it ran at (repeated until it ran within one second) and ours gets that "now".
//! - **duration**: `parseutil.ParseDurationSecond` vs `Field::coerce` of a
//!   [`FieldType::Duration`], to the nanosecond, on the value `encoding/json` decodes.
//! - **field**: `framework.FieldData{Raw, Schema}.GetOkErr` vs [`FieldData::parse`] (which
//!   runs `Field::coerce` and treats `null` as "not provided", as `GetOkErr` does) for every
//!   [`FieldType`]: whether it is set, accepted or rejected, and the value. Raw is decoded by
//!   `json.Unmarshal` as in `pb.ProtoRequestToLogicalRequest`: numbers are `float64` (a plugin
//!   never sees a `json.Number`). Error texts are not compared: ours name the field and say
//!   what is wrong, Go's are mapstructure's (`'' expected type 'int', got unconvertible type
//!   'bool'`).
//!
//! Where ours deliberately differs, the difference is listed in [`KNOWN`] with its reason.
//! The test fails on any difference no entry explains, and on any entry that explains none
//! (so the list cannot silently grow or go stale). It also fails if Go produced no cases.
//!
//! Needs Go (`tests/vault-sdk/go.mod`'s version, or any Go with the module proxy reachable);
//! modules go to `GOMODCACHE` or, when that is not writable, `/tmp/vault-sdk-gomodcache`, as
//! `tests/vault-sdk/run.sh` does. `--nocapture` prints the case counts and how many cases each
//! known difference explains; `SDK_ORACLE_DUMP=<file>` writes every difference found, one JSON
//! object a line, with the entry that explains it.

// Test crates: their items are documented for readers where it helps, not as an API.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use vault_plugin_secrets_litellm::framework::field::FieldValue;
use vault_plugin_secrets_litellm::framework::lease::{MountLeaseLimits, TtlRequest, calculate_ttl};
use vault_plugin_secrets_litellm::framework::{Field, FieldData, FieldType};

mod known;
use known::{KNOWN, Oracle};

#[derive(Deserialize)]
struct GoOutput {
    seed: u64,
    // Go encodes an empty slice as null: that is zero cases, which the test refuses.
    #[serde(deserialize_with = "null_is_empty")]
    ttl: Vec<TtlCase>,
    #[serde(deserialize_with = "null_is_empty")]
    duration: Vec<DurationCase>,
    #[serde(deserialize_with = "null_is_empty")]
    field: Vec<FieldCase>,
}

fn null_is_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct TtlCase {
    name: String,
    mount_default: i64,
    mount_max: i64,
    increment: i64,
    backend_ttl: i64,
    period: i64,
    backend_max_ttl: i64,
    explicit_max_ttl: i64,
    start_unix_nano: Option<i64>,
    now_unix_nano: i64,
    ttl: i64,
    warnings: Vec<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct DurationCase {
    input: String,
    json_error: Option<String>,
    nanos: i64,
    error: Option<String>,
}

#[derive(Deserialize)]
struct FieldCase {
    #[serde(rename = "type")]
    kind: String,
    input: String,
    json_error: Option<String>,
    set: bool,
    value: Value,
    error: Option<String>,
}

/// What one side made of one case, in a form both sides can produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The JSON text itself was refused by the decoder.
    JsonError,
    /// Rejected, with the error text (compared only where it is part of the oracle).
    Rejected(String),
    /// Accepted as "not provided" (a `null`).
    NotSet,
    /// Accepted, with the value in the canonical form of `cmd/oracle`'s `fieldCase.value`.
    Value(Value),
}

impl Outcome {
    pub fn value(&self) -> Option<&Value> {
        match self {
            Outcome::Value(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_rejected(&self) -> bool {
        matches!(self, Outcome::Rejected(_))
    }
}

/// One case on which Go and ours disagree.
#[derive(Debug)]
pub struct Diff {
    pub oracle: Oracle,
    /// The case's name (ttl) or field type (duration, field).
    pub kind: String,
    /// The JSON text (duration, field) or the inputs (ttl).
    pub input: String,
    /// `input` decoded by serde_json, when it decodes.
    pub value: Option<Value>,
    pub go: Outcome,
    pub ours: Outcome,
}

fn go_binary_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vault-sdk")
}

/// Runs `go run ./cmd/oracle` and parses what it prints.
fn run_go_oracle() -> GoOutput {
    let dir = go_binary_dir();
    let mut cmd = Command::new("go");
    cmd.current_dir(&dir).args(["run", "./cmd/oracle"]);
    // As tests/vault-sdk/run.sh: a module cache we can write, go.sum as the pin.
    let modcache = Command::new("go")
        .current_dir(&dir)
        .args(["env", "GOMODCACHE"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `go` ({e}): the sdk oracle needs Go (tests/vault-sdk/go.mod's \
                 version or newer, or any Go with the module proxy reachable) on PATH"
            )
        });
    let modcache = String::from_utf8_lossy(&modcache.stdout).trim().to_owned();
    if modcache.is_empty() || !writable_dir(Path::new(&modcache)) {
        eprintln!("module cache {modcache:?} is not writable; using /tmp/vault-sdk-gomodcache");
        cmd.env("GOMODCACHE", "/tmp/vault-sdk-gomodcache");
    }
    let goflags = std::env::var("GOFLAGS").unwrap_or_default();
    cmd.env("GOFLAGS", format!("{goflags} -mod=readonly"));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go run ./cmd/oracle` in {dir:?}: {e}"));
    assert!(
        out.status.success(),
        "`go run ./cmd/oracle` in {dir:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cmd/oracle printed something that is not its JSON document ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn writable_dir(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".sdk-oracle-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

fn nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).expect("cmd/oracle gives no negative durations"))
}

fn ttl_diffs(cases: &[TtlCase]) -> Vec<Diff> {
    let mut diffs = Vec::new();
    for c in cases {
        let limits = MountLeaseLimits {
            default_ttl: nanos(c.mount_default),
            max_ttl: nanos(c.mount_max),
        };
        let req = TtlRequest {
            increment: nanos(c.increment),
            backend_ttl: nanos(c.backend_ttl),
            period: nanos(c.period),
            backend_max_ttl: nanos(c.backend_max_ttl),
            explicit_max_ttl: nanos(c.explicit_max_ttl),
            start_time: c.start_unix_nano.map(|n| UNIX_EPOCH + nanos(n)),
        };
        let now = UNIX_EPOCH + nanos(c.now_unix_nano);
        let ours = match calculate_ttl(limits, req, now) {
            Ok(got) => Outcome::Value(json!({
                "ttl": u64::try_from(got.ttl.as_nanos()).ok(),
                "warnings": got.warnings,
            })),
            Err(e) => Outcome::Rejected(e.to_string()),
        };
        let go = match &c.error {
            None => Outcome::Value(json!({"ttl": c.ttl, "warnings": c.warnings})),
            Some(e) => Outcome::Rejected(e.clone()),
        };
        if go != ours {
            diffs.push(Diff {
                oracle: Oracle::Ttl,
                kind: c.name.clone(),
                input: format!(
                    "mount default {} max {}; increment {} backend_ttl {} period {} \
                     backend_max_ttl {} explicit_max_ttl {} (ns); start {:?} now {} (unix ns)",
                    c.mount_default,
                    c.mount_max,
                    c.increment,
                    c.backend_ttl,
                    c.period,
                    c.backend_max_ttl,
                    c.explicit_max_ttl,
                    c.start_unix_nano,
                    c.now_unix_nano
                ),
                value: None,
                go,
                ours,
            });
        }
    }
    diffs
}

fn duration_diffs(cases: &[DurationCase]) -> Vec<Diff> {
    let field = Field::new("d", FieldType::Duration, "");
    let mut diffs = Vec::new();
    for c in cases {
        let parsed = serde_json::from_str::<Value>(&c.input).ok();
        let ours = match &parsed {
            None => Outcome::JsonError,
            Some(v) => match field.coerce(v) {
                Ok(FieldValue::Duration(d)) => Outcome::Value(json!(d.as_nanos())),
                Ok(other) => Outcome::Value(json!(format!("not a duration: {other:?}"))),
                Err(e) => Outcome::Rejected(e.to_string()),
            },
        };
        let go = match (&c.json_error, &c.error) {
            (Some(_), _) => Outcome::JsonError,
            (None, Some(e)) => Outcome::Rejected(e.clone()),
            (None, None) => Outcome::Value(json!(c.nanos)),
        };
        // Error texts differ by design (ours names the field); accept/reject and value must not.
        let same = match (&go, &ours) {
            (Outcome::Rejected(_), Outcome::Rejected(_)) => true,
            _ => go == ours,
        };
        if !same {
            diffs.push(Diff {
                oracle: Oracle::Duration,
                kind: "duration".to_owned(),
                input: c.input.clone(),
                value: parsed,
                go,
                ours,
            });
        }
    }
    diffs
}

fn field_type(name: &str) -> FieldType {
    match name {
        "string" => FieldType::String,
        "int" => FieldType::Int,
        "bool" => FieldType::Bool,
        "float" => FieldType::Float,
        "duration" => FieldType::Duration,
        "comma_string_slice" => FieldType::CommaStringSlice,
        "kv_pairs" => FieldType::KeyValueMap,
        "object" => FieldType::Object,
        other => panic!("cmd/oracle sent an unknown field type {other:?}"),
    }
}

fn float_form(f: f64) -> Value {
    json!({ "bits": format!("{:x}", f.to_bits()) })
}

/// Ours, in `cmd/oracle`'s canonical value form.
fn canonical(v: &FieldValue) -> Value {
    match v {
        FieldValue::Str(s) => json!(s),
        FieldValue::Int(i) => json!(i),
        FieldValue::Bool(b) => json!(b),
        FieldValue::Float(f) => float_form(*f),
        // Go's TypeDurationSecond yields int(dur.Seconds()): whole seconds.
        FieldValue::Duration(d) => json!(d.as_secs()),
        FieldValue::Strings(v) => json!(v),
        FieldValue::Map(m) => json!(m),
        // Go prints the float64 -6e6 as -6000000, which reads back as an integer: do the same.
        FieldValue::Object(m) => integral_floats_as_integers(Value::Object(m.clone())),
    }
}

/// Ours in the form Go's json.Marshal of a float64 reads back as: an integral float below 1e21
/// is printed as its shortest digits padded with zeros (-6e6 → -6000000,
/// 5.168155585285628e18 → 5168155585285628000), which serde_json reads as an integer.
fn integral_floats_as_integers(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e21 => {
                serde_json::from_str(&f.to_string()).unwrap_or(Value::Number(n))
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(integral_floats_as_integers).collect())
        }
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, integral_floats_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
}

fn field_diffs(cases: &[FieldCase]) -> Vec<Diff> {
    // FieldData::parse wants a 'static schema: one leaked entry per type, 7 in all.
    let mut schemas: BTreeMap<String, &'static [Field]> = BTreeMap::new();
    let mut diffs = Vec::new();
    for c in cases {
        let schema = *schemas.entry(c.kind.clone()).or_insert_with(|| {
            Box::leak(Box::new([Field::new("f", field_type(&c.kind), "")])) as &'static [Field]
        });
        let parsed = serde_json::from_str::<Value>(&c.input).ok();
        let ours = match &parsed {
            None => Outcome::JsonError,
            Some(v) => {
                let mut raw = Map::new();
                raw.insert("f".to_owned(), v.clone());
                match FieldData::parse(schema, raw) {
                    Ok(data) => match data.get("f") {
                        None => Outcome::NotSet,
                        Some(got) => Outcome::Value(canonical(got)),
                    },
                    Err(e) => Outcome::Rejected(e.to_string()),
                }
            }
        };
        let go = match (&c.json_error, &c.error, c.set) {
            (Some(_), _, _) => Outcome::JsonError,
            (None, Some(e), _) => Outcome::Rejected(e.clone()),
            (None, None, false) => Outcome::NotSet,
            (None, None, true) => Outcome::Value(match &c.value {
                // Compare floats by their bits; "text" is only for reading diffs.
                Value::Object(o) if o.contains_key("bits") && c.kind == "float" => {
                    json!({ "bits": o["bits"] })
                }
                other => other.clone(),
            }),
        };
        let same = match (&go, &ours) {
            (Outcome::Rejected(_), Outcome::Rejected(_)) => true,
            _ => go == ours,
        };
        if !same {
            diffs.push(Diff {
                oracle: Oracle::Field,
                kind: c.kind.clone(),
                input: c.input.clone(),
                value: parsed,
                go,
                ours,
            });
        }
    }
    diffs
}

fn show(d: &Diff) -> String {
    format!(
        "[{:?} {}] input {}\n    go:   {:?}\n    ours: {:?}",
        d.oracle, d.kind, d.input, d.go, d.ours
    )
}

#[test]
fn framework_agrees_with_hashicorp_sdk() {
    let started = Instant::now();
    let go = run_go_oracle();
    let go_time = started.elapsed();
    let counts = [
        ("ttl", go.ttl.len()),
        ("duration", go.duration.len()),
        ("field", go.field.len()),
    ];
    for (name, n) in counts {
        assert!(n > 0, "cmd/oracle produced no {name} cases");
    }

    let mut diffs = ttl_diffs(&go.ttl);
    diffs.extend(duration_diffs(&go.duration));
    diffs.extend(field_diffs(&go.field));

    if let Ok(path) = std::env::var("SDK_ORACLE_DUMP") {
        // One JSON object a line, for grep and jq.
        let text: String = diffs
            .iter()
            .map(|d| {
                json!({
                    "oracle": format!("{:?}", d.oracle),
                    "kind": d.kind,
                    "input": d.input,
                    "go": format!("{:?}", d.go),
                    "ours": format!("{:?}", d.ours),
                    "known": KNOWN.iter().find(|k| k.explains(d)).map(|k| k.name),
                })
                .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(&path, text).expect("write SDK_ORACLE_DUMP");
    }

    // Every difference must be a known one; every known one must still occur.
    let mut hits = vec![0usize; KNOWN.len()];
    let mut unexplained = Vec::new();
    for d in &diffs {
        match KNOWN.iter().position(|k| k.explains(d)) {
            Some(i) => hits[i] += 1,
            None => unexplained.push(show(d)),
        }
    }
    let mut report = String::new();
    writeln!(
        report,
        "seed {}: {} ttl, {} duration, {} field cases (Go {:.1?}); {} differ",
        go.seed,
        go.ttl.len(),
        go.duration.len(),
        go.field.len(),
        go_time,
        diffs.len()
    )
    .ok();
    for (k, n) in KNOWN.iter().zip(&hits) {
        writeln!(report, "  known difference {:?}: {n} cases", k.name).ok();
        if n == &0 {
            writeln!(report, "    (stale; its reason: {})", k.reason).ok();
        }
    }
    eprintln!("{report}");

    let stale: Vec<&str> = KNOWN
        .iter()
        .zip(&hits)
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| k.name)
        .collect();
    assert!(
        unexplained.is_empty(),
        "{} differences from HashiCorp's sdk that no known difference explains; the first {}:\n{}",
        unexplained.len(),
        unexplained.len().min(8),
        unexplained
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stale.is_empty(),
        "known differences that no case shows any more (remove them): {stale:?}"
    );
}
