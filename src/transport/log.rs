//! Logging in go-hclog's JSON format on stderr, which the host parses so our levels and fields
//! show up in its own log (`@level`, `@message`, `@timestamp` with exactly six fractional digits).

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// A tracing layer writing one hclog JSON line per event to stderr.
pub struct HclogLayer {
    module: &'static str,
    max_level: Level,
}

impl HclogLayer {
    /// Logs events at `max_level` and more severe, as hclog module `module`.
    pub fn new(module: &'static str, max_level: Level) -> HclogLayer {
        HclogLayer { module, max_level }
    }
}

/// Installs the layer as the global subscriber for hclog module `module`; the level comes from
/// the environment variable `level_env` (`trace`, `debug`, `info`, `warn`, `error`; default
/// `info`).
pub fn init(module: &'static str, level_env: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    let level = std::env::var(level_env)
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(Level::INFO);
    let subscriber = tracing_subscriber::registry().with(HclogLayer::new(module, level));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        // The HTTP/2 and TLS libraries log every frame at debug (90 % of a debug log in HA
        // runs): their debug lines show only at trace.
        let level = *metadata.level();
        if level >= Level::DEBUG && is_wire_library(metadata.target()) {
            return self.max_level >= Level::TRACE;
        }
        level <= self.max_level
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = format_line(
            self.module,
            event.metadata().level(),
            event,
            std::time::SystemTime::now(),
        );
        // A closed stderr must never take the plugin down.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// One hclog JSON line at error level, for failures before logging is set up: the host logs
/// a plain stderr line only at debug, a JSON one at its level.
pub fn error_line(module: &str, message: &str) -> String {
    let mut line = serde_json::json!({
        "@level": "error",
        "@message": message,
        "@module": module,
        "@timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
    })
    .to_string();
    line.push('\n');
    line
}

/// Libraries that log the wire itself.
fn is_wire_library(target: &str) -> bool {
    [
        "h2",
        "hyper",
        "hyper_util",
        "rustls",
        "tokio_rustls",
        "reqwest",
        "tower",
    ]
    .iter()
    .any(|lib| target == *lib || target.starts_with(&format!("{lib}::")))
}

fn format_line(
    module: &str,
    level: &Level,
    event: &Event<'_>,
    now: std::time::SystemTime,
) -> String {
    let mut fields = JsonFields(Map::new());
    event.record(&mut fields);
    let mut map = fields.0;
    let message = map
        .remove("message")
        .unwrap_or(Value::String(String::new()));
    map.insert("@level".into(), Value::String(hclog_level(level).into()));
    map.insert("@message".into(), message);
    map.insert("@module".into(), Value::String(module.into()));
    map.insert(
        "@timestamp".into(),
        Value::String(humantime::format_rfc3339_micros(now).to_string()),
    );
    let mut line = Value::Object(map).to_string();
    line.push('\n');
    line
}

fn hclog_level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Captures formatted lines instead of writing to stderr.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            let when =
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
            self.0.lock().unwrap().push(format_line(
                "mymodule",
                event.metadata().level(),
                event,
                when,
            ));
        }
    }

    #[test]
    fn early_errors_are_one_hclog_line_at_error_level() {
        let line = error_line("mymodule", "the host offers \"3,4\"\nonly");
        assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@level"], "error");
        assert_eq!(v["@module"], "mymodule");
        assert_eq!(v["@message"], "the host offers \"3,4\"\nonly");
    }

    #[test]
    fn wire_libraries_log_their_debug_lines_only_at_trace() {
        assert!(is_wire_library("h2::codec::framed_write"));
        assert!(is_wire_library("hyper"));
        assert!(!is_wire_library("h2o"));
        assert!(!is_wire_library("my_plugin::engine"));
    }

    #[test]
    fn lines_are_hclog_json() {
        use tracing_subscriber::layer::SubscriberExt;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(role = "dev", count = 3, "key issued");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with('\n'));
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "key issued");
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["@module"], "mymodule");
        assert_eq!(v["role"], "dev");
        assert_eq!(v["count"], 3);
    }
}
