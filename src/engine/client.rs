//! HTTP client for the LiteLLM proxy's virtual-key management API.
//!
//! The secrets engine needs these upstream operations, each mapped to LiteLLM routes:
//!
//! | plugin action | LiteLLM call | method |
//! |---|---|---|
//! | issue a credential | `POST /key/generate` | [`Client::generate`] |
//! | renew a lease | `POST /key/update` with `duration` | [`Client::extend`] |
//! | revoke a lease | `POST /key/delete` | [`Client::delete_keys`], [`Client::delete_aliases`] |
//! | verify config / inspect | `GET /key/list`, `GET /key/info` | [`Client::verify`], [`Client::info`], [`Client::list_aliases`] |
//! | rotate the admin key | `GET /key/info` (own key), `POST /key/generate`, `POST /key/update` | [`Client::self_info`], [`Client::generate_with`], [`Client::set_alias`] |
//!
//! Behaviour follows what LiteLLM 1.108 actually does (see `shared/docs/litellm-api.md`):
//! durations are always sent as `"<n>s"` (a bare number is a 500 upstream), a renew never
//! sends `duration: null` (that would make the key immortal), and "nothing to delete" is a
//! 404 that revoke treats as success, but only when the body really is LiteLLM's
//! `No keys found` answer, so that a misrouted URL (a reverse proxy's own 404) never makes
//! a revoke look successful while the key lives on.
//!
//! Transport: one pooled HTTP/1.1 keep-alive client per [`Client`], no environment proxy, no
//! redirects (the master key is never replayed elsewhere), a deadline per exchange, response
//! bodies capped at [`MAX_RESPONSE_BYTES`]. Every call but generate is retried once when the
//! connection drops under it: uvicorn closes keep-alive connections after some error answers
//! without announcing it, and the next request on that connection dies unanswered. Generate
//! is never repeated, since the lost answer may belong to a key that now exists.
//!
//! Secrets: the master key travels only in a sensitive `Authorization` header; issued keys
//! only in JSON bodies. URLs carry hashes at most, so transport errors (which quote URLs) are
//! safe to show. Anything quoted from a response body passes through [`redact`] first, and no
//! `Debug` implementation here prints a key.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Largest response body the client reads; LiteLLM's answers are a few KiB, so anything
/// bigger is not a LiteLLM answer and must not be buffered without bound.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Request timeout used by [`ClientConfig::new`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest excerpt of an unparseable error body quoted in an [`ApiError::Status`] message.
const MAX_MESSAGE_CHARS: usize = 200;

/// Page size for `/key/list`; LiteLLM rejects anything above 100 with a 422.
const LIST_PAGE_SIZE: u32 = 100;

/// Upper bound on pages fetched by [`Client::list_aliases`], so that a server that keeps
/// reporting more pages cannot keep the caller looping (100 keys × 10 000 pages = 1M keys).
const MAX_LIST_PAGES: u32 = 10_000;

/// Idle pooled connections are dropped after this long. LiteLLM runs under uvicorn, whose
/// keep-alive timeout is 5 s; reusing a connection the server is closing at that moment
/// fails the request, so the client gives idle connections up first.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Connection settings for a LiteLLM proxy.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL of the proxy, `http://` or `https://`, optionally with a path prefix
    /// (for a proxy mounted below a sub-path). A trailing `/` is ignored.
    pub base_url: String,
    /// Master key (or any admin-capable key) sent as `Authorization: Bearer …`.
    pub master_key: String,
    /// Deadline for one whole exchange: connect, send, and read the response body.
    pub request_timeout: Duration,
    /// PEM bundle of CA certificates. When set, it is the only trust anchor: the platform's
    /// roots are not consulted, so a private CA cannot be bypassed by a public one.
    pub ca_cert: Option<String>,
    /// Skip TLS certificate verification entirely (development only).
    pub insecure_tls: bool,
}

impl ClientConfig {
    /// A configuration with [`DEFAULT_REQUEST_TIMEOUT`], platform trust roots and
    /// certificate verification on.
    pub fn new(base_url: impl Into<String>, master_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            master_key: master_key.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ca_cert: None,
            insecure_tls: false,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("master_key", &"[redacted]")
            .field("request_timeout", &self.request_timeout)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "<PEM>"))
            .field("insecure_tls", &self.insecure_tls)
            .finish()
    }
}

/// Errors from talking to LiteLLM.
///
/// Variants separate "did not reach LiteLLM" ([`Unreachable`](Self::Unreachable): nothing was
/// processed, a retry is safe) from outcomes where LiteLLM may have acted
/// ([`Timeout`](Self::Timeout), [`Disconnected`](Self::Disconnected),
/// [`InvalidResponse`](Self::InvalidResponse)), and from LiteLLM's own refusals
/// ([`Status`](Self::Status)). Every message is safe to show to an operator: keys are redacted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The TCP/TLS connection could not be established (DNS failure, refused, TLS handshake).
    #[error("LiteLLM at {base_url} is unreachable: {reason}")]
    Unreachable {
        /// The route that was being called.
        op: &'static str,
        /// The configured base URL.
        base_url: String,
        /// Why the connection failed, e.g. `connection refused`.
        reason: String,
    },
    /// No complete response within the configured request timeout.
    #[error("LiteLLM {op} timed out after {}", humantime::format_duration(*after))]
    Timeout {
        /// The route that was being called.
        op: &'static str,
        /// The configured request timeout.
        after: Duration,
    },
    /// The connection was closed after the request was sent but before a response arrived,
    /// so the request may or may not have been carried out. Operations that are safe to
    /// repeat (all but generate) have already been retried once when this is returned.
    #[error("LiteLLM {op} failed: connection closed before a response was received ({reason})")]
    Disconnected {
        /// The route that was being called.
        op: &'static str,
        /// Transport detail.
        reason: String,
    },
    /// LiteLLM answered with a non-success HTTP status.
    #[error("LiteLLM {op} failed: HTTP {status}: {message}")]
    Status {
        /// The route that was being called.
        op: &'static str,
        /// HTTP status code.
        status: u16,
        /// LiteLLM's `error.message`, FastAPI's `detail`, or the start of the body (redacted).
        message: String,
    },
    /// A success status with a body that is not the expected JSON (not JSON, truncated,
    /// larger than [`MAX_RESPONSE_BYTES`], or missing a required field).
    #[error("LiteLLM {op} returned an invalid response: {reason}")]
    InvalidResponse {
        /// The route that was being called.
        op: &'static str,
        /// What was wrong with the body.
        reason: String,
    },
    /// The [`ClientConfig`] cannot be used.
    #[error("invalid LiteLLM client configuration: {0}")]
    InvalidConfig(String),
}

impl ApiError {
    /// True when LiteLLM rejected the credentials (HTTP 401 or 403).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// True for HTTP 404 (e.g. renewing a key that no longer exists).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The HTTP status, for [`ApiError::Status`] only.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The LiteLLM route the failed call went to, if a call was made.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { op, .. }
            | Self::Timeout { op, .. }
            | Self::Disconnected { op, .. }
            | Self::Status { op, .. }
            | Self::InvalidResponse { op, .. } => Some(op),
            Self::InvalidConfig(_) => None,
        }
    }

    /// False only when the request certainly never reached LiteLLM, so it had no effect
    /// (e.g. a refused connection). A generate that fails with `true` may have created a key.
    pub fn may_have_reached_server(&self) -> bool {
        !matches!(self, Self::Unreachable { .. } | Self::InvalidConfig(_))
    }
}

/// Body of `POST /key/generate`.
///
/// Serialized as the plain JSON object LiteLLM expects (it silently ignores unknown fields
/// and `{"json": …}` envelopes, so the field names here matter). `None` fields are omitted.
#[derive(Serialize, Default, Clone, Debug, PartialEq)]
pub struct GenerateKeyRequest {
    /// The secret, when the caller chose it; `None` lets LiteLLM make one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<ChosenKey>,
    /// Alias; must be unique among live keys (LiteLLM answers 400 otherwise). Omitted if empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_alias: String,
    /// Lifetime as `"<n>s"` (see [`duration_string`]); `None` = never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Allowed models; empty = all models of the proxy.
    pub models: Vec<String>,
    /// Spend limit in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<f64>,
    /// Spend-reset window such as `30d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<String>,
    /// Tokens per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<i64>,
    /// LiteLLM team that owns the key (spend attribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// LiteLLM user that owns the key (spend attribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Free-form metadata stored with the key.
    pub metadata: Map<String, Value>,
    /// `default`, `llm_api`, `management` or `read_only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
}

/// A secret key chosen by the plugin rather than by LiteLLM: `sk-` and 256 random bits in
/// base64url (LiteLLM's own keys carry 128). Its hash is known before the key exists, so the
/// key can be recorded before it is created. It must be fresh: asked for an existing secret,
/// LiteLLM answers 200 with the request echoed but leaves the existing row as it was. Neither
/// `Debug` nor an error prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChosenKey(String);

impl ChosenKey {
    /// A fresh key from the system's CSPRNG; `None` if that fails (let LiteLLM choose then).
    pub fn random() -> Option<ChosenKey> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).ok()?;
        Some(ChosenKey(format!("sk-{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// The hash LiteLLM will store the key under (see [`token_hash`]).
    pub fn token(&self) -> String {
        token_hash(&self.0)
    }
}

impl Serialize for ChosenKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for ChosenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChosenKey([redacted])")
    }
}

/// A freshly generated key. `Debug` never prints the secret.
#[derive(Clone, PartialEq)]
pub struct GeneratedKey {
    /// The secret `sk-…` key: hand it to the caller, never store or log it.
    pub key: String,
    /// SHA-256 hex of `key` (LiteLLM's `token`): the key's stable identifier.
    pub token: String,
    /// The alias LiteLLM stored.
    pub key_alias: Option<String>,
    /// Expiry as LiteLLM reported it (ISO-8601); `None` = never expires.
    pub expires: Option<String>,
}

impl GeneratedKey {
    /// [`expires`](Self::expires) as a point in time, if present and parseable.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires.as_deref().and_then(parse_timestamp)
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key", &"[redacted]")
            .field("token", &self.token)
            .field("key_alias", &self.key_alias)
            .field("expires", &self.expires)
            .finish()
    }
}

/// The expiry LiteLLM stored after a `/key/update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyExpiry {
    /// As reported, e.g. `2026-11-22T08:08:04.300000+00:00`; `None` = never expires.
    pub expires: Option<String>,
    /// The same instant parsed.
    pub expires_at: Option<SystemTime>,
}

/// Outcome of a delete call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// LiteLLM deleted at least one of the given keys (it does not say which).
    Some,
    /// None of the given keys exists any more (LiteLLM's 404 `No keys found`); for a revoke
    /// this is success.
    NoneFound,
}

/// Lifecycle state of a key, as `/key/info` reports it (or derived the same way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Past its `expires`.
    Expired,
    /// Blocked (`/key/block`).
    Revoked,
    /// Deleted; LiteLLM still answers from its archive of deleted keys.
    Deleted,
    /// A status this client does not know (from a newer LiteLLM).
    Other(String),
}

/// What `/key/info` tells about a key. Fields LiteLLM omits or sends with an unexpected
/// type are left empty rather than failing the whole lookup.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyInfo {
    /// The alias.
    pub key_alias: Option<String>,
    /// Expiry as reported; `None` = never expires.
    pub expires: Option<String>,
    /// The same instant parsed.
    pub expires_at: Option<SystemTime>,
    /// Lifecycle state.
    pub status: KeyStatus,
    /// Allowed models (empty = all).
    pub models: Vec<String>,
    /// Stored metadata.
    pub metadata: Map<String, Value>,
    /// Spend limit.
    pub max_budget: Option<f64>,
    /// Spend-reset window.
    pub budget_duration: Option<String>,
    /// Spend so far.
    pub spend: Option<f64>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Option<i64>,
    /// Owning team.
    pub team_id: Option<String>,
    /// Owning user.
    pub user_id: Option<String>,
    /// `default`, `llm_api`, …
    pub key_type: Option<String>,
    /// Whether the key is blocked.
    pub blocked: bool,
    /// When the key was deleted (archived keys only).
    pub deleted_at: Option<String>,
}

/// One entry of [`Client::list_aliases`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// SHA-256 hex of the key.
    pub token: String,
    /// The alias.
    pub key_alias: String,
    /// Stored metadata (the plugin's `vault_*` stamps among it).
    pub metadata: Map<String, Value>,
    /// Expiry; `None` = never expires (or not reported).
    pub expires_at: Option<SystemTime>,
    /// Creation time, if reported.
    pub created_at: Option<SystemTime>,
}

/// The caller's own key, as [`Client::self_info`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnKey {
    /// SHA-256 hex of the key the client authenticates with.
    pub token: String,
    /// What LiteLLM stores about it.
    pub info: KeyInfo,
    /// Routes the key is limited to; empty = whatever its type and its owner's role allow.
    pub allowed_routes: Vec<String>,
    /// When the key was created, as reported.
    pub created_at: Option<String>,
    /// The same instant parsed.
    pub created_at_time: Option<SystemTime>,
}

/// A LiteLLM admin client. Cheap to clone: clones share one pooled keep-alive connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL as configured minus a trailing `/`.
    base: String,
    /// The key routes under it, parsed once rather than from a string on every request.
    urls: RouteUrls,
    /// `Bearer <master key>`, marked sensitive so HTTP-level debug output hides it.
    auth: HeaderValue,
    /// Exact master key, redacted wherever a response body is quoted.
    master_key: String,
    timeout: Duration,
    /// Set once LiteLLM answered a chosen key with 403 (`disable_custom_api_keys`).
    refuses_chosen_keys: AtomicBool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .finish_non_exhaustive()
    }
}

const OP_GENERATE: &str = "/key/generate";
const OP_UPDATE: &str = "/key/update";
const OP_DELETE: &str = "/key/delete";
const OP_INFO: &str = "/key/info";
const OP_LIST: &str = "/key/list";

/// The URL of each key route.
struct RouteUrls {
    generate: Url,
    update: Url,
    delete: Url,
    info: Url,
    list: Url,
}

impl RouteUrls {
    /// `base` is a validated URL without a trailing `/`.
    fn new(base: &str) -> Result<RouteUrls, ApiError> {
        let url = |op: &str| {
            Url::parse(&format!("{base}{op}")).map_err(|e| {
                ApiError::InvalidConfig(format!("url {base:?} is not a valid URL: {e}"))
            })
        };
        Ok(RouteUrls {
            generate: url(OP_GENERATE)?,
            update: url(OP_UPDATE)?,
            delete: url(OP_DELETE)?,
            info: url(OP_INFO)?,
            list: url(OP_LIST)?,
        })
    }
}

impl Client {
    /// Validates `cfg` and builds the HTTP client. Makes no network call (see [`Client::verify`]).
    pub fn new(cfg: &ClientConfig) -> Result<Client, ApiError> {
        let base = validate_base_url(&cfg.base_url)?;
        if cfg.master_key.is_empty() {
            return Err(ApiError::InvalidConfig("master key is empty".into()));
        }
        if cfg.request_timeout.is_zero() {
            return Err(ApiError::InvalidConfig(
                "request timeout must be greater than zero".into(),
            ));
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", cfg.master_key)).map_err(|_| {
                ApiError::InvalidConfig(
                    "master key contains characters not allowed in an HTTP header".into(),
                )
            })?;
        auth.set_sensitive(true);

        let mut builder = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // A proxy from the environment would see (and could log) the master key in
            // plain-HTTP setups; the plugin talks to LiteLLM directly.
            .no_proxy()
            // Never replay the master key to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "vault-plugin-secrets-litellm/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = cfg.ca_cert.as_deref().filter(|p| !p.trim().is_empty()) {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ApiError::InvalidConfig(format!("ca_cert is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(ApiError::InvalidConfig(
                    "ca_cert contains no PEM certificate".into(),
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        if cfg.insecure_tls {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| {
            ApiError::InvalidConfig(format!("cannot build HTTP client: {}", error_chain(&e)))
        })?;

        Ok(Client {
            inner: Arc::new(Inner {
                http,
                urls: RouteUrls::new(&base)?,
                base,
                auth,
                master_key: cfg.master_key.clone(),
                timeout: cfg.request_timeout,
                refuses_chosen_keys: AtomicBool::new(false),
            }),
        })
    }

    /// The base URL requests go to (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Checks that LiteLLM is reachable and accepts the master key for key management,
    /// with one cheap authenticated call (`GET /key/list?page=1&size=1`).
    pub async fn verify(&self) -> Result<(), ApiError> {
        let req = self
            .request(Method::GET, &self.inner.urls.list)
            .query(&[("page", "1"), ("size", "1")]);
        let (status, body) = self.exchange(OP_LIST, req, Retry::Once).await?;
        let obj: Map<String, Value> = self.expect_success(OP_LIST, status, &body)?;
        if !obj.get("keys").is_some_and(Value::is_array) {
            return Err(invalid(OP_LIST, "missing `keys` list"));
        }
        Ok(())
    }

    /// Whether to send a [`ChosenKey`]: false once this proxy refused one.
    pub fn accepts_chosen_keys(&self) -> bool {
        !self.inner.refuses_chosen_keys.load(Ordering::Relaxed)
    }

    /// Creates a key (`POST /key/generate`). A proxy that refuses chosen keys (HTTP 403,
    /// LiteLLM's `disable_custom_api_keys`) is asked again without one, and the key LiteLLM
    /// made is returned: compare [`GeneratedKey::token`] with the chosen key's.
    ///
    /// If this fails with an error for which [`ApiError::may_have_reached_server`] is true, a
    /// key may exist without the caller knowing its secret: clean up by alias.
    pub async fn generate(&self, req: &GenerateKeyRequest) -> Result<GeneratedKey, ApiError> {
        self.generate_with(req, &Map::new()).await
    }

    /// Sets a key's expiry to `duration_secs` from now (`POST /key/update`): the renew
    /// operation. Works on already-expired keys too. Returns the stored expiry.
    ///
    /// A key that no longer exists gives [`ApiError::Status`] 404 ([`ApiError::is_not_found`]).
    pub async fn extend(
        &self,
        token_hash: &str,
        duration_secs: u64,
    ) -> Result<KeyExpiry, ApiError> {
        // Built explicitly so that `duration` is always a string: `null` would make the key
        // never expire.
        let body = serde_json::json!({
            "key": token_hash,
            "duration": duration_string(duration_secs),
        });
        let rb = self
            .request(Method::POST, &self.inner.urls.update)
            .json(&body);
        let (status, body) = self.exchange(OP_UPDATE, rb, Retry::Once).await?;
        let answer: UpdateAnswer = self.expect_success(OP_UPDATE, status, &body)?;
        match answer.expires {
            Some(Value::String(s)) => match parse_timestamp(&s) {
                Some(at) => Ok(KeyExpiry {
                    expires: Some(s),
                    expires_at: Some(at),
                }),
                None => Err(invalid(OP_UPDATE, "`expires` is not an ISO-8601 timestamp")),
            },
            // We asked for a finite duration; a key that now never expires is not what a
            // renew may silently produce.
            Some(Value::Null) => Err(invalid(
                OP_UPDATE,
                "`expires` is null after setting a duration",
            )),
            Some(_) => Err(invalid(OP_UPDATE, "`expires` is not a string")),
            None => Err(invalid(OP_UPDATE, "missing `expires`")),
        }
    }

    /// Deletes keys by hash (or raw key) with `POST /key/delete {"keys": […]}`.
    ///
    /// LiteLLM's 404 `No keys found` becomes `Ok(Deleted::NoneFound)`; any other 404 (for
    /// example from a reverse proxy in front of a wrong URL) stays an error.
    pub async fn delete_keys(&self, token_hashes: &[String]) -> Result<Deleted, ApiError> {
        self.delete(serde_json::json!({ "keys": token_hashes }))
            .await
    }

    /// Deletes keys by alias with `POST /key/delete {"key_aliases": […]}`; see [`Client::delete_keys`].
    pub async fn delete_aliases(&self, aliases: &[String]) -> Result<Deleted, ApiError> {
        self.delete(serde_json::json!({ "key_aliases": aliases }))
            .await
    }

    async fn delete(&self, body: Value) -> Result<Deleted, ApiError> {
        let rb = self
            .request(Method::POST, &self.inner.urls.delete)
            .json(&body);
        let (status, body) = self.exchange(OP_DELETE, rb, Retry::Once).await?;
        if status == StatusCode::NOT_FOUND
            && litellm_message(&body).is_some_and(|m| m.contains("No keys found"))
        {
            return Ok(Deleted::NoneFound);
        }
        let answer: DeleteAnswer = self.expect_success(OP_DELETE, status, &body)?;
        if !answer.deleted_keys.as_ref().is_some_and(Value::is_array) {
            return Err(invalid(OP_DELETE, "missing `deleted_keys`"));
        }
        Ok(Deleted::Some)
    }

    /// Looks a key up by hash (`GET /key/info?key=<hash>`). `Ok(None)` when LiteLLM does not
    /// know it at all; deleted keys are still found, with [`KeyStatus::Deleted`].
    pub async fn info(&self, token_hash: &str) -> Result<Option<KeyInfo>, ApiError> {
        let rb = self
            .request(Method::GET, &self.inner.urls.info)
            .query(&[("key", token_hash)]);
        let (status, body) = self.exchange(OP_INFO, rb, Retry::Once).await?;
        if status == StatusCode::NOT_FOUND && is_litellm_key_not_found(&body) {
            return Ok(None);
        }
        let obj: Map<String, Value> = self.expect_success(OP_INFO, status, &body)?;
        match obj.get("info") {
            Some(Value::Object(info)) => Ok(Some(key_info(info, SystemTime::now()))),
            _ => Err(invalid(OP_INFO, "missing `info` object")),
        }
    }

    /// Lists live keys whose alias starts with `alias_prefix` (all keys if it is empty),
    /// paging through `GET /key/list?return_full_object=true` 100 at a time, oldest first.
    ///
    /// The server-side filter uses `substring_matching=true` (LiteLLM ≥ 1.108,
    /// case-insensitive substring, where `%` and `_` act as SQL wildcards); the exact,
    /// case-sensitive prefix test is applied here. Paging is oldest first so that keys created
    /// meanwhile land on later pages instead of shifting earlier ones; keys deleted meanwhile
    /// still shift pages, so a key may be missed (never reported twice unless LiteLLM ignores
    /// the sort). Collect first and delete afterwards.
    pub async fn list_aliases(&self, alias_prefix: &str) -> Result<Vec<ListedKey>, ApiError> {
        let mut out = Vec::new();
        let size = LIST_PAGE_SIZE.to_string();
        for page in 1..=MAX_LIST_PAGES {
            let page_str = page.to_string();
            let mut query = vec![
                ("page", page_str.as_str()),
                ("size", size.as_str()),
                ("return_full_object", "true"),
                ("sort_by", "created_at"),
                ("sort_order", "asc"),
            ];
            if !alias_prefix.is_empty() {
                query.push(("key_alias", alias_prefix));
                query.push(("substring_matching", "true"));
            }
            let rb = self
                .request(Method::GET, &self.inner.urls.list)
                .query(&query);
            let (status, body) = self.exchange(OP_LIST, rb, Retry::Once).await?;
            let obj: Map<String, Value> = self.expect_success(OP_LIST, status, &body)?;
            let Some(Value::Array(keys)) = obj.get("keys") else {
                return Err(invalid(OP_LIST, "missing `keys` list"));
            };
            for entry in keys {
                let Value::Object(k) = entry else {
                    return Err(invalid(OP_LIST, "`keys` entry is not an object"));
                };
                let (Some(token), Some(alias)) =
                    (opt_string(k, "token"), opt_string(k, "key_alias"))
                else {
                    continue;
                };
                if alias.starts_with(alias_prefix) {
                    let time =
                        |field: &str| opt_string(k, field).as_deref().and_then(parse_timestamp);
                    out.push(ListedKey {
                        token,
                        key_alias: alias,
                        metadata: k
                            .get("metadata")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                        expires_at: time("expires"),
                        created_at: time("created_at"),
                    });
                }
            }
            let total_pages = obj.get("total_pages").and_then(Value::as_u64).unwrap_or(0);
            if keys.is_empty() || u64::from(page) >= total_pages {
                break;
            }
        }
        Ok(out)
    }

    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.inner.auth.clone())
    }

    /// Sends a request and reads the body (bounded), mapping transport failures.
    async fn exchange(
        &self,
        op: &'static str,
        rb: reqwest::RequestBuilder,
        retry: Retry,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let started = std::time::Instant::now();
        let again = match retry {
            Retry::Once => rb.try_clone(),
            Retry::Never => None,
        };
        let mut resp = match rb.send().await {
            Ok(resp) => resp,
            Err(e) => match (self.transport_error(op, &e), again) {
                // uvicorn closes a keep-alive connection after some error answers without
                // saying so, and a request sent on it at that moment dies unanswered. One
                // immediate retry (on a new connection) absorbs that race for operations
                // that are safe to repeat.
                (ApiError::Disconnected { reason, .. }, Some(again)) => {
                    tracing::debug!(
                        op,
                        reason,
                        "LiteLLM connection closed under the request; retrying once"
                    );
                    again
                        .send()
                        .await
                        .map_err(|e| self.transport_error(op, &e))?
                }
                (err, _) => return Err(err),
            },
        };
        let status = resp.status();
        let body = self.read_body(&mut resp).await;
        tracing::debug!(
            op,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0,
            "LiteLLM call"
        );
        match body {
            Ok(body) => Ok((status, body)),
            // An error status explains itself even if its body is cut short.
            Err(BodyError::TooLarge(partial) | BodyError::Broken(partial, _))
                if !status.is_success() =>
            {
                Ok((status, partial))
            }
            Err(BodyError::TooLarge(_)) => Err(invalid(
                op,
                format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"),
            )),
            Err(BodyError::Broken(_, e)) if e.is_timeout() => Err(ApiError::Timeout {
                op,
                after: self.inner.timeout,
            }),
            Err(BodyError::Broken(_, e)) => Err(invalid(
                op,
                format!(
                    "response body truncated: {}",
                    self.redacted(&error_chain(&e))
                ),
            )),
        }
    }

    async fn read_body(&self, resp: &mut reqwest::Response) -> Result<Vec<u8>, BodyError> {
        if resp
            .content_length()
            .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
        {
            return Err(BodyError::TooLarge(Vec::new()));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        let room = MAX_RESPONSE_BYTES - body.len();
                        body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                        return Err(BodyError::TooLarge(body));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(BodyError::Broken(body, e)),
            }
        }
    }

    fn transport_error(&self, op: &'static str, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                op,
                after: self.inner.timeout,
            }
        } else if e.is_connect() {
            ApiError::Unreachable {
                op,
                base_url: self.inner.base.clone(),
                reason: self.redacted(&error_chain(e)),
            }
        } else if e.is_builder() {
            ApiError::InvalidConfig(self.redacted(&error_chain(e)))
        } else {
            ApiError::Disconnected {
                op,
                reason: self.redacted(&error_chain(e)),
            }
        }
    }

    /// Parses a 2xx body, which must be a JSON object, as `T` (a map, or one of the `…Answer`
    /// structs, which read only the fields the client uses); turns a non-2xx answer into
    /// [`ApiError::Status`].
    fn expect_success<T: DeserializeOwned>(
        &self,
        op: &'static str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<T, ApiError> {
        if !status.is_success() {
            return Err(ApiError::Status {
                op,
                status: status.as_u16(),
                message: self.error_message(status, body),
            });
        }
        // Every target takes any object, so a data error means the body is not one (serde
        // would also fill a struct from an array: that is refused too). The message of a
        // syntax error gives a position, never the input.
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<T>(body) {
            Ok(answer) if object => Ok(answer),
            Ok(_) => Err(invalid(op, "body is not a JSON object")),
            Err(e) if e.is_data() => Err(invalid(op, "body is not a JSON object")),
            Err(e) if e.is_eof() => Err(invalid(op, format!("body is truncated JSON ({e})"))),
            Err(e) => Err(invalid(op, format!("body is not JSON ({e})"))),
        }
    }

    /// The human part of an error body, redacted.
    fn error_message(&self, status: StatusCode, body: &[u8]) -> String {
        let message = litellm_message(body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no response body")
                    .to_owned()
            } else {
                text.to_owned()
            }
        });
        // Redact before truncating, so a cut never leaves a partial key that is too short
        // to be recognised.
        truncate_chars(&self.redacted(&message), MAX_MESSAGE_CHARS)
    }

    fn redacted(&self, text: &str) -> String {
        redact(text, &[self.inner.master_key.as_str()])
    }

    /// Looks up the caller's own key: `GET /key/info` without `key`, which LiteLLM answers for
    /// the key in the `Authorization` header.
    ///
    /// `Ok(None)` when LiteLLM has no row for that key, which is its answer for the proxy's
    /// master key (configuration, not a virtual key); a virtual key, admin or not, gets its own
    /// row.
    pub async fn self_info(&self) -> Result<Option<OwnKey>, ApiError> {
        let rb = self.request(Method::GET, &self.inner.urls.info);
        let (status, body) = self.exchange(OP_INFO, rb, Retry::Once).await?;
        if status == StatusCode::NOT_FOUND && is_litellm_key_not_found(&body) {
            return Ok(None);
        }
        let obj: Map<String, Value> = self.expect_success(OP_INFO, status, &body)?;
        own_key(&obj, &token_hash(&self.inner.master_key), SystemTime::now()).map(Some)
    }

    /// Creates a key like [`Client::generate`], adding LiteLLM fields that
    /// [`GenerateKeyRequest`] does not model (e.g. `allowed_routes`). Fields of `req` win over
    /// entries of `extra` with the same name.
    pub async fn generate_with(
        &self,
        req: &GenerateKeyRequest,
        extra: &Map<String, Value>,
    ) -> Result<GeneratedKey, ApiError> {
        match self.generate_once(req, extra).await {
            // A 403 is a definite answer (no key was made), so asking again is safe.
            Err(e) if req.key.is_some() && e.status() == Some(403) => {
                let unchosen = GenerateKeyRequest {
                    key: None,
                    ..req.clone()
                };
                let generated = self.generate_once(&unchosen, extra).await?;
                self.inner
                    .refuses_chosen_keys
                    .store(true, Ordering::Relaxed);
                tracing::info!(
                    "LiteLLM refuses keys chosen by the caller (disable_custom_api_keys); it generates them from now on"
                );
                Ok(generated)
            }
            result => result,
        }
    }

    async fn generate_once(
        &self,
        req: &GenerateKeyRequest,
        extra: &Map<String, Value>,
    ) -> Result<GeneratedKey, ApiError> {
        let mut body = match serde_json::to_value(req) {
            Ok(Value::Object(body)) => body,
            _ => {
                return Err(ApiError::InvalidConfig(
                    "generate request does not serialize to a JSON object".into(),
                ));
            }
        };
        for (name, value) in extra {
            body.entry(name.clone()).or_insert_with(|| value.clone());
        }
        let rb = self
            .request(Method::POST, &self.inner.urls.generate)
            .json(&body);
        let (status, body) = self.exchange(OP_GENERATE, rb, Retry::Never).await?;
        let answer: GenerateAnswer = self.expect_success(OP_GENERATE, status, &body)?;
        let key = match answer.key {
            Some(Value::String(k)) if !k.is_empty() => k,
            _ => return Err(invalid(OP_GENERATE, "missing `key`")),
        };
        // The hash is computed locally: it is what LiteLLM stores, and it must be right even
        // if a proxy version stops returning `token`.
        let token = token_hash(&key);
        if let Some(Value::String(reported)) = &answer.token
            && !reported.eq_ignore_ascii_case(&token)
        {
            return Err(invalid(OP_GENERATE, "`token` is not the SHA-256 of `key`"));
        }
        Ok(GeneratedKey {
            key,
            token,
            key_alias: into_string(answer.key_alias),
            expires: into_string(answer.expires),
        })
    }

    /// Renames a key (`POST /key/update` with only `key_alias`, so nothing else changes).
    /// LiteLLM refuses an alias another live key has with a 400.
    pub async fn set_alias(&self, token_hash: &str, alias: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({ "key": token_hash, "key_alias": alias });
        let rb = self
            .request(Method::POST, &self.inner.urls.update)
            .json(&body);
        let (status, body) = self.exchange(OP_UPDATE, rb, Retry::Once).await?;
        self.expect_success::<serde::de::IgnoredAny>(OP_UPDATE, status, &body)?;
        Ok(())
    }
}

/// Whether a request may be sent again after the connection died under it. Generate is
/// not: the first attempt may have created a key, and a second would create another.
#[derive(Clone, Copy)]
enum Retry {
    Once,
    Never,
}

enum BodyError {
    /// More than [`MAX_RESPONSE_BYTES`]; carries what was read up to the limit.
    TooLarge(Vec<u8>),
    /// The body stream failed; carries what was read before.
    Broken(Vec<u8>, reqwest::Error),
}

/// Lowercase hex SHA-256 of a key: the `token` under which LiteLLM stores it.
pub fn token_hash(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A LiteLLM `duration` value for whole seconds: `"<n>s"`. LiteLLM rejects a bare number.
pub fn duration_string(secs: u64) -> String {
    format!("{secs}s")
}

/// Replaces secrets in text quoted from LiteLLM: every exact occurrence of one of `secrets`
/// becomes `[redacted]`, and every `sk-` key longer than 12 characters becomes
/// `sk-...<last 4>` (LiteLLM's own short form, which it prints itself).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, "[redacted]");
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(pos) = rest.find("sk-") {
        let (before, from_key) = rest.split_at(pos);
        out.push_str(before);
        let len = from_key
            .char_indices()
            .skip(3)
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(from_key.len(), |(i, _)| i);
        let (token, after) = from_key.split_at(len);
        if token.len() > 12 {
            out.push_str("sk-...");
            out.push_str(token.get(token.len() - 4..).unwrap_or_default());
        } else {
            out.push_str(token);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Parses the timestamps LiteLLM emits: `…Z` (generate, list), `…+00:00` (info, update),
/// or naive (assumed UTC). Any `±HH:MM` offset is honoured.
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let n = bytes.len();
    // `YYYY-MM-DDTHH:MM:SS` is 19 bytes; an offset needs at least that before it.
    if n >= 25 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
        let base = s.get(..n - 6)?;
        let hours = std::str::from_utf8(&bytes[n - 5..n - 3])
            .ok()?
            .parse::<u64>()
            .ok()?;
        let minutes = std::str::from_utf8(&bytes[n - 2..])
            .ok()?
            .parse::<u64>()
            .ok()?;
        let offset = Duration::from_secs(hours * 3600 + minutes * 60);
        let local = humantime::parse_rfc3339_weak(base).ok()?;
        // Local time = UTC + offset, so UTC = local - offset.
        return if bytes[n - 6] == b'+' {
            local.checked_sub(offset)
        } else {
            local.checked_add(offset)
        };
    }
    humantime::parse_rfc3339_weak(s).ok()
}

fn validate_base_url(raw: &str) -> Result<String, ApiError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed)
        .map_err(|e| ApiError::InvalidConfig(format!("url {trimmed:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::InvalidConfig(format!(
            "url must use http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::InvalidConfig("url has no host".into()));
    }
    // Credentials in the URL would end up in error messages; the master key is the only
    // credential and it travels in a header.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::InvalidConfig(
            "url must not contain a user name or password".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ApiError::InvalidConfig(
            "url must not contain a query or fragment".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The message of a LiteLLM (`{"error":{"message"}}`) or FastAPI (`{"detail": …}`) error body.
fn litellm_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if let Some(error) = value.get("error") {
        return match error {
            Value::String(s) => Some(s.clone()),
            Value::Object(e) => e.get("message").map(|m| match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            _ => None,
        };
    }
    match value.get("detail")? {
        Value::String(s) => Some(s.clone()),
        // Validation errors: [{"type","loc","msg"}, …] → "body.duration: Input should be …".
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| {
                    let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                    match item.get("loc").and_then(Value::as_array) {
                        Some(loc) if !loc.is_empty() => {
                            let loc: Vec<String> = loc
                                .iter()
                                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                                .collect();
                            format!("{}: {msg}", loc.join("."))
                        }
                        _ => msg.to_owned(),
                    }
                })
                .collect();
            Some(parts.join("; "))
        }
        other => Some(other.to_string()),
    }
}

/// Whether a 404 body is LiteLLM saying "no such key" (`{"error": {"type": "not_found_error"
/// | message "Key not found…"}}`), as opposed to a 404 from something in front of it (e.g.
/// FastAPI's `{"detail": "Not Found"}` for a wrong path prefix).
fn is_litellm_key_not_found(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(error) = value.get("error") else {
        return false;
    };
    let field = |name: &str| error.get(name).and_then(Value::as_str).unwrap_or_default();
    field("type") == "not_found_error"
        || field("message")
            .to_ascii_lowercase()
            .contains("key not found")
}

fn key_info(info: &Map<String, Value>, now: SystemTime) -> KeyInfo {
    let expires = opt_string(info, "expires");
    let expires_at = expires.as_deref().and_then(parse_timestamp);
    let blocked = info
        .get("blocked")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let deleted_at = opt_string(info, "deleted_at");
    // LiteLLM 1.108 reports `status`; derive it the same way for proxies that do not.
    let status = match opt_string(info, "status").as_deref() {
        Some("active") => KeyStatus::Active,
        Some("expired") => KeyStatus::Expired,
        Some("revoked") => KeyStatus::Revoked,
        Some("deleted") => KeyStatus::Deleted,
        Some(other) => KeyStatus::Other(other.to_owned()),
        None if deleted_at.is_some() => KeyStatus::Deleted,
        None if blocked => KeyStatus::Revoked,
        None if expires_at.is_some_and(|at| at <= now) => KeyStatus::Expired,
        None => KeyStatus::Active,
    };
    KeyInfo {
        key_alias: opt_string(info, "key_alias"),
        expires,
        expires_at,
        status,
        models: info
            .get("models")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        metadata: info
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        max_budget: info.get("max_budget").and_then(Value::as_f64),
        budget_duration: opt_string(info, "budget_duration"),
        spend: info.get("spend").and_then(Value::as_f64),
        tpm_limit: info.get("tpm_limit").and_then(Value::as_i64),
        rpm_limit: info.get("rpm_limit").and_then(Value::as_i64),
        max_parallel_requests: info.get("max_parallel_requests").and_then(Value::as_i64),
        team_id: opt_string(info, "team_id"),
        user_id: opt_string(info, "user_id"),
        key_type: opt_string(info, "key_type"),
        blocked,
        deleted_at,
    }
}

/// Parses a `/key/info` answer about the caller's own key, checking that it is about
/// `expected_token` (LiteLLM echoes the hash of the key it looked up in `key`).
fn own_key(
    obj: &Map<String, Value>,
    expected_token: &str,
    now: SystemTime,
) -> Result<OwnKey, ApiError> {
    let Some(Value::Object(info)) = obj.get("info") else {
        return Err(invalid(OP_INFO, "missing `info` object"));
    };
    if let Some(Value::String(echoed)) = obj.get("key")
        && !echoed.eq_ignore_ascii_case(expected_token)
    {
        return Err(invalid(OP_INFO, "the answer is about a different key"));
    }
    let created_at = opt_string(info, "created_at");
    Ok(OwnKey {
        token: expected_token.to_owned(),
        info: key_info(info, now),
        allowed_routes: info
            .get("allowed_routes")
            .and_then(Value::as_array)
            .map(|routes| {
                routes
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        created_at_time: created_at.as_deref().and_then(parse_timestamp),
        created_at,
    })
}

/// The fields of a `/key/generate` answer the client reads. LiteLLM answers with the whole
/// key row (about 80 fields); serde skips the others without building them.
#[derive(Deserialize)]
struct GenerateAnswer {
    #[serde(default, deserialize_with = "present")]
    key: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    token: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    key_alias: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    expires: Option<Value>,
}

/// The field of a `/key/update` answer the client reads.
#[derive(Deserialize)]
struct UpdateAnswer {
    #[serde(default, deserialize_with = "present")]
    expires: Option<Value>,
}

/// The field of a `/key/delete` answer the client reads.
#[derive(Deserialize)]
struct DeleteAnswer {
    #[serde(default, deserialize_with = "present")]
    deleted_keys: Option<Value>,
}

/// `Some` whenever the field is present, `null` included (a plain `Option` would turn `null`
/// into `None`); absent fields get `None` from `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn into_string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn opt_string(obj: &Map<String, Value>, field: &str) -> Option<String> {
    obj.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn invalid(op: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidResponse {
        op,
        reason: reason.into(),
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A compact description of a transport error: the innermost causes, without the URL
/// (reqwest's top-level message repeats it) and with well-known I/O failures worded plainly.
fn error_chain(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut messages: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let plain = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("connection refused"),
                std::io::ErrorKind::ConnectionReset => Some("connection reset by peer"),
                std::io::ErrorKind::ConnectionAborted => Some("connection aborted"),
                std::io::ErrorKind::UnexpectedEof => Some("unexpected end of stream"),
                std::io::ErrorKind::TimedOut => Some("connection timed out"),
                _ => None,
            };
            if let Some(plain) = plain {
                return plain.to_owned();
            }
        }
        let text = e.to_string();
        // hyper-util wraps causes in generic layers ("client error (Connect)") that say
        // nothing an operator can act on; keep each remaining distinct message once.
        if !text.starts_with("client error (") && !messages.iter().any(|m| m == &text) {
            messages.push(text);
        }
        source = e.source();
    }
    if messages.is_empty() {
        return err.to_string();
    }
    // The last two layers are the specific ones ("tcp connect error: Connection refused").
    let start = messages.len().saturating_sub(2);
    messages[start..].join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn redact_shortens_long_keys_and_removes_secrets() {
        let master = "sk-local-0123456789abcdef";
        let text =
            format!("bad key {master} and sk-sPViGGjrpUUH1oTN0SjYHw, short sk-...jYHw sk-abc");
        let out = redact(&text, &[master]);
        assert!(!out.contains(master));
        assert!(!out.contains("sPViGGjrpUUH1oTN0SjYHw"));
        assert!(out.contains("sk-...jYHw"));
        assert!(out.contains("sk-abc"));
        assert!(out.contains("[redacted]"));
        // A master key that is not `sk-` shaped is still caught.
        assert_eq!(
            redact("x=hunter2hunter2", &["hunter2hunter2"]),
            "x=[redacted]"
        );
        // Multi-byte text around keys must not panic.
        assert_eq!(redact("é sk-ééééééééééééé", &[]), "é sk-ééééééééééééé");
        assert_eq!(redact("sk-", &[]), "sk-");
    }

    #[test]
    fn timestamps_in_all_litellm_forms() {
        let z = parse_timestamp("2026-11-22T08:07:03.891396Z");
        let off = parse_timestamp("2026-11-22T08:07:03.891396+00:00");
        let naive = parse_timestamp("2026-11-22T08:07:03.891396");
        assert!(z.is_some());
        assert_eq!(z, off);
        assert_eq!(z, naive);
        assert_eq!(
            parse_timestamp("2026-11-22T10:07:03.891396+02:00"),
            z,
            "offsets are applied"
        );
        assert_eq!(parse_timestamp("2026-11-22T06:07:03.891396-02:00"), z);
        // Python leaves a zero fraction out: LiteLLM's creation times (whole milliseconds)
        // come without one once in a thousand keys.
        let whole = parse_timestamp("2026-11-22T08:07:03Z");
        assert!(whole.is_some());
        assert_eq!(parse_timestamp("2026-11-22T08:07:03+00:00"), whole);
        assert_eq!(parse_timestamp("2026-11-22T08:07:03"), whole);
        assert_eq!(parse_timestamp("2026-11-22T10:07:03+02:00"), whole);
        assert_eq!(parse_timestamp("never"), None);
        assert_eq!(parse_timestamp("2026-11-22T08:07:03.891396+0é:00"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn error_messages_from_all_shapes() {
        let litellm = br#"{"error":{"message":"{'error': 'No keys found'}","type":"internal_server_error","param":null,"code":"404"}}"#;
        assert_eq!(
            litellm_message(litellm).as_deref(),
            Some("{'error': 'No keys found'}")
        );
        let fastapi = br#"{"detail":[{"type":"list_type","loc":["body","keys"],"msg":"Input should be a valid list"}]}"#;
        assert_eq!(
            litellm_message(fastapi).as_deref(),
            Some("body.keys: Input should be a valid list")
        );
        let detail = br#"{"detail":"Virtual key is not allowed to call this route."}"#;
        assert_eq!(
            litellm_message(detail).as_deref(),
            Some("Virtual key is not allowed to call this route.")
        );
        assert_eq!(litellm_message(b"<html>"), None);
    }

    #[test]
    fn base_url_validation() {
        let ok = |u: &str| validate_base_url(u).map_err(|e| e.to_string());
        assert_eq!(
            ok("http://127.0.0.1:4000/").as_deref(),
            Ok("http://127.0.0.1:4000")
        );
        assert_eq!(
            ok("https://gw.example/litellm/").as_deref(),
            Ok("https://gw.example/litellm")
        );
        assert!(ok("ftp://x").is_err());
        assert!(ok("http://user:pw@x").is_err());
        assert!(ok("http://x/?a=b").is_err());
        assert!(ok("not a url").is_err());
        assert!(ok("").is_err());
    }

    #[test]
    fn routes_go_under_the_base_url_path() {
        for (base, generate) in [
            (
                "http://127.0.0.1:4000/",
                "http://127.0.0.1:4000/key/generate",
            ),
            (
                "https://gw.example/litellm/",
                "https://gw.example/litellm/key/generate",
            ),
        ] {
            let urls = RouteUrls::new(&validate_base_url(base).unwrap()).unwrap();
            assert_eq!(urls.generate.as_str(), generate);
            assert!(urls.list.as_str().ends_with("/key/list"), "{}", urls.list);
            assert!(urls.delete.path().ends_with("/key/delete"));
            assert!(urls.update.path().ends_with("/key/update"));
            assert!(urls.info.path().ends_with("/key/info"));
        }
    }

    #[test]
    fn generate_request_skips_unset_fields() {
        let req = GenerateKeyRequest {
            key_alias: "a".into(),
            duration: Some(duration_string(90)),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).ok(),
            Some(serde_json::json!({"key_alias":"a","duration":"90s","models":[],"metadata":{}}))
        );
    }

    #[test]
    fn answers_keep_null_apart_from_absent_and_skip_other_fields() {
        let answer: UpdateAnswer =
            serde_json::from_str(r#"{"expires":null,"router_settings":{"a":[1,2]}}"#).unwrap();
        assert_eq!(answer.expires, Some(Value::Null));
        let answer: UpdateAnswer = serde_json::from_str(r#"{"spend":0.0}"#).unwrap();
        assert_eq!(answer.expires, None);
        let answer: GenerateAnswer =
            serde_json::from_str(r#"{"key":"sk-x","models":[],"expires":"2026-11-22T10:00:00Z"}"#)
                .unwrap();
        assert_eq!(into_string(answer.key).as_deref(), Some("sk-x"));
        assert_eq!(into_string(answer.key_alias), None);
        assert!(into_string(answer.expires).is_some());
    }

    #[test]
    fn success_bodies_must_be_json_objects() {
        let client = Client::new(&ClientConfig::new("http://127.0.0.1:1", "sk-master")).unwrap();
        let answer = |body: &str| {
            client
                .expect_success::<DeleteAnswer>(OP_DELETE, StatusCode::OK, body.as_bytes())
                .map(|a| a.deleted_keys)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            answer(r#" {"deleted_keys":[]}"#),
            Ok(Some(serde_json::json!([])))
        );
        // serde alone would fill the struct from an array.
        for not_an_object in ["[[]]", "[]", "1", "\"x\"", "null"] {
            let err = answer(not_an_object).unwrap_err();
            assert!(
                err.ends_with("body is not a JSON object"),
                "{not_an_object}: {err}"
            );
        }
        assert!(
            answer("{\"deleted_keys\":")
                .unwrap_err()
                .contains("truncated")
        );
        assert!(answer("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn chosen_keys_are_long_random_and_never_printed() {
        let (Some(a), Some(b)) = (ChosenKey::random(), ChosenKey::random()) else {
            panic!("the CSPRNG failed");
        };
        assert_ne!(a, b);
        let Value::String(secret) = serde_json::to_value(&a).unwrap() else {
            panic!("a chosen key serializes to a string");
        };
        // `sk-` + 32 bytes in unpadded base64url: LiteLLM wants `sk-` and at least 16 chars.
        let body = secret.strip_prefix("sk-").unwrap();
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(a.token(), token_hash(&secret));
        let req = GenerateKeyRequest {
            key: Some(a),
            ..Default::default()
        };
        assert!(!format!("{req:?}").contains(body));
        assert_eq!(
            serde_json::to_value(&req).unwrap()["key"],
            Value::String(secret)
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let key = GeneratedKey {
            key: "sk-sPViGGjrpUUH1oTN0SjYHw".into(),
            token: "t".into(),
            key_alias: None,
            expires: None,
        };
        assert!(!format!("{key:?}").contains("sPViGG"));
        let cfg = ClientConfig::new("http://127.0.0.1:1", "sk-master-secret-123456");
        assert!(!format!("{cfg:?}").contains("master-secret"));
        let client = Client::new(&cfg).map_err(|e| e.to_string());
        assert!(client.is_ok());
        if let Ok(client) = client {
            assert!(!format!("{client:?}").contains("master-secret"));
        }
    }

    #[test]
    fn status_derivation_without_status_field() {
        let now = SystemTime::now();
        let info = |v: Value| key_info(v.as_object().unwrap_or(&Map::new()), now).status;
        assert_eq!(info(serde_json::json!({})), KeyStatus::Active);
        assert_eq!(
            info(serde_json::json!({"blocked": true})),
            KeyStatus::Revoked
        );
        assert_eq!(
            info(serde_json::json!({"expires": "2000-01-01T00:00:00Z"})),
            KeyStatus::Expired
        );
        assert_eq!(
            info(serde_json::json!({"deleted_at": "2000-01-01T00:00:00Z", "blocked": true})),
            KeyStatus::Deleted
        );
        assert_eq!(
            info(serde_json::json!({"status": "paused"})),
            KeyStatus::Other("paused".into())
        );
    }
    #[test]
    fn own_key_parses_the_real_answer_shape() {
        let hash = token_hash("sk-own-admin-key-0123456789");
        let answer = serde_json::json!({
            "key": hash,
            "info": {
                "key_name": "sk-...6789",
                "key_alias": "vault-admin",
                "user_id": "vault-admin-user",
                "key_type": "default",
                "models": [],
                "metadata": {"owner": "vault"},
                "allowed_routes": ["/key/generate", "/key/list"],
                "expires": null,
                "created_at": "2026-11-22T08:46:30.585000+00:00",
                "status": "active"
            }
        });
        let own = own_key(
            answer.as_object().unwrap_or(&Map::new()),
            &hash,
            SystemTime::now(),
        );
        let own = own.map_err(|e| e.to_string());
        assert!(own.is_ok(), "{own:?}");
        if let Ok(own) = own {
            assert_eq!(own.token, hash);
            assert_eq!(own.info.key_alias.as_deref(), Some("vault-admin"));
            assert_eq!(own.info.user_id.as_deref(), Some("vault-admin-user"));
            assert_eq!(own.info.expires, None);
            assert_eq!(own.allowed_routes, vec!["/key/generate", "/key/list"]);
            assert_eq!(
                own.created_at_time,
                parse_timestamp("2026-11-22T08:46:30.585Z")
            );
        }
    }

    #[test]
    fn own_key_refuses_answers_about_another_key_or_without_info() {
        let mine = token_hash("sk-mine-0123456789abcdef");
        let theirs = serde_json::json!({"key": token_hash("sk-other"), "info": {}});
        let obj = theirs.as_object().cloned().unwrap_or_default();
        assert!(matches!(
            own_key(&obj, &mine, SystemTime::now()),
            Err(ApiError::InvalidResponse { .. })
        ));
        let bare = serde_json::json!({"key": mine});
        let obj = bare.as_object().cloned().unwrap_or_default();
        assert!(matches!(
            own_key(&obj, &mine, SystemTime::now()),
            Err(ApiError::InvalidResponse { .. })
        ));
        // A proxy that does not echo the key is taken at its word.
        let silent = serde_json::json!({"info": {"allowed_routes": "not a list"}});
        let obj = silent.as_object().cloned().unwrap_or_default();
        let own = own_key(&obj, &mine, SystemTime::now()).map_err(|e| e.to_string());
        assert_eq!(own.map(|o| o.allowed_routes), Ok(Vec::new()));
    }
}
