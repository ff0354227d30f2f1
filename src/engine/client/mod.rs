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
//! | check a role's models, list the catalogue | `GET /model/info`, else `GET /v1/models` | [`Client::catalogue`] |
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

mod config;
mod error;
mod http;
mod models;
mod parse;
mod teams;
mod types;

pub use config::{ClientConfig, DEFAULT_REQUEST_TIMEOUT, validate_base_url};
pub use error::ApiError;
pub use models::{Catalogue, SPECIAL_MODEL_NAMES};
pub use parse::{duration_string, parse_timestamp, redact, token_hash};
pub use teams::{MemberUsage, TeamLimits, TeamUsage};
pub use types::{
    ChosenKey, Deleted, GenerateKeyRequest, GeneratedKey, KeyExpiry, KeyInfo, KeyStatus, ListedKey,
    OwnKey,
};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value};

use error::{error_chain, invalid};
use http::Retry;
use parse::{is_litellm_key_not_found, key_info, litellm_message, opt_string, own_key};
use types::{DeleteAnswer, GenerateAnswer, UpdateAnswer, into_string};

/// Largest response body the client reads; LiteLLM's answers are a few KiB, so anything
/// bigger is not a LiteLLM answer and must not be buffered without bound.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

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
        let base = validate_base_url(&cfg.base_url).map_err(ApiError::InvalidConfig)?;
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

    /// Changes a key (`POST /key/update`): `fields` as given (e.g. `key_alias`, `duration`,
    /// `metadata`, limits), next to `key`. A key that no longer exists gives a 404
    /// ([`ApiError::is_not_found`]).
    pub async fn update_key(
        &self,
        token_hash: &str,
        mut fields: Map<String, Value>,
    ) -> Result<(), ApiError> {
        fields.insert("key".into(), Value::String(token_hash.to_string()));
        let rb = self
            .request(Method::POST, &self.inner.urls.update)
            .json(&fields);
        let (status, body) = self.exchange(OP_UPDATE, rb, Retry::Once).await?;
        self.expect_success::<serde::de::IgnoredAny>(OP_UPDATE, status, &body)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
