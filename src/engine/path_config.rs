//! `config`: where the LiteLLM proxy is and the admin key that manages its virtual keys.
//!
//! The key is write-only: reads return everything else, and it never appears in logs or errors.
//! The entry is seal-wrapped where the seal supports it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::MountState;
use crate::engine::client::{Client, ClientConfig, DEFAULT_REQUEST_TIMEOUT, validate_base_url};
use crate::engine::error::{Error, Result};
use crate::engine::layout::CONFIG;
use crate::engine::schema;
use crate::framework::{
    DefaultValue, Field, FieldType, Operation, Path, Request, Response, Storage, existence_check,
    handler,
};

static FIELDS: &[Field] = &[
    Field::new("base_url", FieldType::String, "URL of the LiteLLM proxy, e.g. https://litellm.example.com.").required(),
    Field::new(
        "master_key",
        FieldType::String,
        "LiteLLM master key, or a virtual key with admin rights, used to manage virtual keys. Never returned.",
    )
    .required()
    .sensitive(),
    Field::new("request_timeout", FieldType::Duration, "Timeout of each request to LiteLLM.")
        .default_value(DefaultValue::DurationSecs(DEFAULT_REQUEST_TIMEOUT.as_secs())),
    Field::new("ca_cert", FieldType::String, "PEM-encoded CA certificate(s) to trust for an https base_url."),
    Field::new("insecure_tls", FieldType::Bool, "Skip TLS certificate verification (testing only).")
        .default_value(DefaultValue::Bool(false)),
    Field::new(
        "verify_connection",
        FieldType::Bool,
        "On write, make one authenticated call to LiteLLM and refuse a config that does not work.",
    )
    .default_value(DefaultValue::Bool(true)),
];

/// Why a config write that failed its check against LiteLLM was refused.
const VERIFY_FAILED: &str = "verify_connection: LiteLLM did not accept the config";

const SYNOPSIS: &str = "Configure the connection to the LiteLLM proxy.";
const DESCRIPTION: &str = "\
Sets the LiteLLM proxy URL and the admin key used to create, extend and delete virtual keys.
`master_key` is required when the config is created and is never returned by reads. Writes
change only the fields given. With verify_connection=true (the default), the write fails unless
LiteLLM accepts the key. Reads also show last_rotated: when rotate-root last replaced the key
(RFC 3339; empty until then, and again after a write of master_key).";

/// The stored config.
#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    /// The proxy URL, without a trailing slash.
    pub base_url: String,
    /// The admin key (never returned, never logged).
    pub master_key: String,
    /// Per-request timeout, in seconds.
    pub request_timeout: u64,
    /// Extra CA certificates (PEM), empty for none.
    #[serde(default)]
    pub ca_cert: String,
    /// Skip TLS verification.
    #[serde(default)]
    pub insecure_tls: bool,
    /// When `rotate-root` last replaced `master_key` (RFC 3339), empty if it never did.
    /// Defaulted so that configs stored before rotate-root existed still load.
    #[serde(default)]
    pub last_rotated: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("master_key", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("insecure_tls", &self.insecure_tls)
            .field("last_rotated", &self.last_rotated)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads the config, `None` when the mount is unconfigured.
    pub async fn load(storage: &Storage) -> Result<Option<Config>> {
        Ok(schema::load(storage, CONFIG).await?)
    }

    /// The client settings for this config.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.base_url.clone(),
            master_key: self.master_key.clone(),
            request_timeout: Duration::from_secs(self.request_timeout),
            ca_cert: (!self.ca_cert.is_empty()).then(|| self.ca_cert.clone()),
            insecure_tls: self.insecure_tls,
        }
    }
}

/// The `config` path.
pub fn path() -> Path<MountState> {
    Path::new("config", FIELDS)
        .operation(Operation::Read, handler(read))
        .operation(Operation::Create, handler(write))
        .operation(Operation::Update, handler(write))
        .operation(Operation::Delete, handler(delete))
        .existence(existence_check(exists))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn exists(_: Arc<MountState>, req: Request) -> Result<bool> {
    Ok(req.storage.get(CONFIG).await?.is_some())
}

async fn read(_: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let Some(config) = Config::load(&req.storage).await? else {
        return Ok(None);
    };
    Ok(Some(Response::data(json!({
        "base_url": config.base_url,
        "request_timeout": config.request_timeout,
        "ca_cert": config.ca_cert,
        "insecure_tls": config.insecure_tls,
        "last_rotated": config.last_rotated,
    }))))
}

async fn write(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let d = &req.data;
    let existing = Config::load(&req.storage).await?;
    let creating = existing.is_none();
    let required = |name: &str| -> Result<String> {
        match d.str(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(Error::invalid(format!(
                "{name} is required when creating the config"
            ))),
        }
    };
    let mut config = match existing {
        Some(config) => config,
        None => Config {
            base_url: required("base_url")?,
            master_key: required("master_key")?,
            request_timeout: DEFAULT_REQUEST_TIMEOUT.as_secs(),
            ca_cert: String::new(),
            insecure_tls: false,
            last_rotated: String::new(),
        },
    };
    if let Some(url) = d.str("base_url") {
        config.base_url = url.to_string();
    }
    if let Some(key) = d.str("master_key") {
        if key.trim().is_empty() {
            return Err(Error::invalid("master_key must not be empty"));
        }
        config.master_key = key.trim().to_string();
        // The timestamp describes the key rotate-root made; an operator's key was not rotated.
        config.last_rotated.clear();
    }
    if let Some(timeout) = d.duration("request_timeout") {
        if timeout < Duration::from_secs(1) {
            return Err(Error::invalid("request_timeout must be at least 1s"));
        }
        config.request_timeout = timeout.as_secs();
    }
    if let Some(pem) = d.str("ca_cert") {
        config.ca_cert = pem.trim().to_string();
    }
    if let Some(insecure) = d.bool("insecure_tls") {
        config.insecure_tls = insecure;
    }
    config.base_url = validate_base_url(&config.base_url).map_err(Error::Invalid)?;

    let client = Client::new(&config.client_config()).map_err(|e| Error::invalid(e.to_string()))?;
    if d.bool("verify_connection").unwrap_or(true) {
        client.verify().await.map_err(|e| {
            Error::litellm(VERIFY_FAILED, e).noted(
                " (fix base_url/master_key, or write verify_connection=false to skip the check)"
                    .into(),
            )
        })?;
    }
    schema::store(&req.storage, CONFIG, &config, true).await?;
    state.invalidate(CONFIG);
    // No key is issued before the first config write, and every key issued by this version is
    // indexed: tidy may judge the keys created from here on.
    crate::engine::key_index::mark_start(&req.storage, req.now).await?;
    tracing::info!(base_url = %config.base_url, created = creating, "LiteLLM connection configured");
    Ok(None)
}

async fn delete(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    req.storage.delete(CONFIG).await?;
    state.invalidate(CONFIG);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_the_key() {
        let config = Config {
            base_url: "http://x".into(),
            master_key: "sk-secret-master".into(),
            request_timeout: 30,
            ca_cert: String::new(),
            insecure_tls: false,
            last_rotated: String::new(),
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
    }

    #[test]
    fn configs_stored_before_rotate_root_still_load() {
        let stored = r#"{"base_url":"http://x","master_key":"sk-k","request_timeout":30}"#;
        let config: Option<Config> = serde_json::from_str(stored).ok();
        assert_eq!(
            config.map(|c| c.last_rotated),
            Some(String::new()),
            "last_rotated defaults to empty"
        );
    }
}
