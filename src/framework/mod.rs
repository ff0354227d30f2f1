//! The Rust counterpart of Vault's Go `sdk/framework`: everything a secrets engine needs that is
//! not specific to LiteLLM.
//!
//! A plugin describes itself as a [`Backend`]: a path table ([`Path`], with typed [`Field`]s),
//! secret types with renew/revoke ([`SecretType`]), special paths, an optional WAL rollback
//! function and an optional [`Periodic`] function run on the host's `rollback` tick. The
//! transport layer feeds it host requests ([`RawRequest`]); the backend routes them, coerces the
//! input, runs the handler and answers help/OpenAPI requests by itself.
//!
//! - [`path`]: patterns, operations, handlers; `request`: [`RawRequest`], [`Request`],
//!   [`Response`].
//! - [`field`]: field schemas and Vault's input coercions.
//! - [`lease`]: Vault's `CalculateTTL`.
//! - [`secret`]: secret types, lease options and the renew/revoke dispatch key.
//! - [`wal`]: write-ahead log entries and their rollback.
//! - [`storage`], [`system_view`]: the host services a request may use; [`cache`] keeps
//!   values derived from storage until they change.
//! - [`help`]: `path-help` texts and the OpenAPI document.
//! - [`clock`]: where requests read the time (movable in tests).

pub mod cache;
pub mod clock;
pub mod field;
pub mod help;
pub mod lease;
pub mod path;
mod request;
pub mod secret;
pub mod storage;
pub mod system_view;
pub mod wal;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;

pub use clock::Clock;
pub use field::{DefaultValue, Field, FieldData, FieldError, FieldType};
pub use path::{Handler, Operation, Path, existence_check, handler};
pub use request::{RawRequest, Request, Response};
pub use secret::{LeaseOptions, LeaseSecret, SecretType};
pub use storage::{Storage, StorageError};
pub use system_view::{SystemView, SystemViewError};
pub use wal::{WalEntry, WalRollback};

/// A boxed, sendable future, as handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The result of a handler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request failed. The variant decides what the caller sees (see [`Error::kind`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong: HTTP 400 with this message.
    #[error("{0}")]
    BadRequest(String),
    /// A field failed coercion: HTTP 400 naming the field.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A service the plugin depends on failed, not the caller: the host answers with `status`
    /// (502 for unreachable or failing, 504 for timed out), which Vault's clients retry as
    /// they retry every 5xx. The message names the service, so the operator knows where to look.
    #[error("{message}")]
    Upstream {
        /// The HTTP status the host gives the caller.
        status: u16,
        /// What failed, naming the service.
        message: String,
    },
    /// No path matches: HTTP 404.
    #[error("unsupported path")]
    UnsupportedPath,
    /// The path exists but does not serve this operation: HTTP 405.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// Something the caller cannot fix (storage unavailable, a bug): HTTP 500.
    #[error("{0}")]
    Internal(String),
}

/// How the transport must present an [`Error`] to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An error-shaped response (`{"error": …}`), which the host answers with 400.
    Response,
    /// ProtoError `ErrUnsupportedPath`.
    UnsupportedPath,
    /// ProtoError `ErrUnsupportedOperation`.
    UnsupportedOperation,
    /// A ProtoError with this HTTP status (Go's `logical.CodedError`).
    Coded(u16),
    /// A generic ProtoError, answered with 500.
    Internal,
}

impl Error {
    /// How the transport presents this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) | Error::Field(_) => ErrorKind::Response,
            Error::Upstream { status, .. } => ErrorKind::Coded(*status),
            Error::UnsupportedPath => ErrorKind::UnsupportedPath,
            Error::UnsupportedOperation => ErrorKind::UnsupportedOperation,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Shorthand for [`Error::BadRequest`].
    pub fn bad_request(msg: impl Into<String>) -> Error {
        Error::BadRequest(msg.into())
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Error {
        Error::Internal(e.to_string())
    }
}

impl From<SystemViewError> for Error {
    fn from(e: SystemViewError) -> Error {
        Error::Internal(e.to_string())
    }
}

/// Storage paths the host treats specially (see `SpecialPaths` in the protocol notes).
#[derive(Debug, Clone, Default)]
pub struct SpecialPaths {
    /// Paths that need root or sudo.
    pub root: Vec<String>,
    /// Paths that need no token.
    pub unauthenticated: Vec<String>,
    /// Storage prefixes that are never replicated.
    pub local_storage: Vec<String>,
    /// Storage keys (or prefixes ending in `/`) that are seal-wrapped.
    pub seal_wrap_storage: Vec<String>,
}

/// Whether routing rejects input that fails field coercion.
#[derive(Clone, Copy)]
enum Coercion {
    Strict,
    Lenient,
}

/// Called when storage changed behind the plugin's back (HA standbys, replication).
pub type Invalidate<S> = Arc<dyn Fn(&S, &str) + Send + Sync>;

/// Work run on every `rollback` tick (about once a minute per mount, and once before unmount),
/// like Go's `PeriodicFunc`. An error fails the rollback request, which can fail an unmount:
/// functions that reach outside Vault should log their failures and return `Ok`.
pub type Periodic<S> = Arc<dyn Fn(Arc<S>, Request) -> BoxFuture<Result<()>> + Send + Sync>;

/// Wraps an `async fn(Arc<S>, Request) -> Result<()>` as a [`Periodic`].
pub fn periodic_fn<S, F, Fut, E>(f: F) -> Periodic<S>
where
    F: Fn(Arc<S>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Error>,
{
    Arc::new(move |state, req| {
        let done = f(state, req);
        Box::pin(async move { done.await.map_err(Into::into) })
    })
}

/// Work run every [`every`](Ticker::every) while a backend is mounted, on the active node only:
/// what a Go plugin starts as a goroutine from its `InitializeFunc` (the database engine's 5 s
/// static-rotation queue), for schedules finer than the host's one-minute rollback tick.
pub struct Ticker<S> {
    /// How often it runs.
    pub every: Duration,
    /// What it runs. Errors are logged; the next tick comes all the same.
    pub run: Periodic<S>,
}

/// One tick of a [`Ticker`]: skipped on a standby, whose storage is a read-only replica and
/// whose side effects would race the active node's.
async fn tick<S>(
    tick: &RawRequest,
    state: &Arc<S>,
    run: &Periodic<S>,
    clock: &Clock,
    storage: &Storage,
    system: &SystemView,
) {
    match system.is_standby().await {
        Ok(false) => {}
        Ok(true) => return,
        Err(e) => {
            tracing::debug!(error = %e, "ticker could not tell whether this node is active; skipped");
            return;
        }
    }
    let request = Request::internal(tick, storage, system, clock.now());
    if let Err(e) = run(state.clone(), request).await {
        tracing::warn!(error = %e, "ticker work failed; the next tick retries");
    }
}

/// A secrets engine: its path table, secret types and hooks, around the plugin's own state `S`.
pub struct Backend<S> {
    state: Arc<S>,
    /// Root help text for `path-help <mount>`.
    pub help: &'static str,
    /// The path table, matched in order.
    pub paths: Vec<Path<S>>,
    /// The secret types this backend issues.
    pub secrets: Vec<SecretType<S>>,
    /// Special paths reported to the host.
    pub special_paths: SpecialPaths,
    /// Undoes a WAL entry that outlived its operation.
    pub wal_rollback: Option<WalRollback<S>>,
    /// WAL entries younger than this are left alone by rollback (their operation may still run).
    pub wal_rollback_min_age: Duration,
    /// Drops caches when the host reports a storage change.
    pub invalidate: Option<Invalidate<S>>,
    /// Runs on every `rollback` tick, before the WAL rollback.
    pub periodic: Option<Periodic<S>>,
    /// Where requests read the time.
    pub clock: Clock,
    /// Runs on its own schedule once the host has initialized the backend ([`Backend::start`]).
    pub ticker: Option<Ticker<S>>,
    ticker_task: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    backend_uuid: std::sync::OnceLock<String>,
}

impl<S> Drop for Backend<S> {
    fn drop(&mut self) {
        if let Ok(mut task) = self.ticker_task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

impl<S: Send + Sync + 'static> Backend<S> {
    /// A backend with no paths around `state`.
    pub fn new(state: Arc<S>, help: &'static str) -> Backend<S> {
        Backend {
            state,
            help,
            paths: Vec::new(),
            secrets: Vec::new(),
            special_paths: SpecialPaths::default(),
            wal_rollback: None,
            wal_rollback_min_age: wal::DEFAULT_ROLLBACK_MIN_AGE,
            invalidate: None,
            periodic: None,
            clock: Clock::system(),
            ticker: None,
            ticker_task: std::sync::Mutex::new(None),
            backend_uuid: std::sync::OnceLock::new(),
        }
    }

    /// Takes the mount's UUID the host sends at `Setup`; the first one stays.
    pub fn setup(&self, backend_uuid: &str) {
        let _ = self.backend_uuid.set(backend_uuid.to_string());
    }

    /// The mount's UUID from [`setup`](Backend::setup); empty before it.
    pub fn backend_uuid(&self) -> &str {
        self.backend_uuid.get().map_or("", String::as_str)
    }

    /// What the ticker's requests say about the mount: no path (a tick has none), the UUID.
    fn ticker_request(&self) -> RawRequest {
        RawRequest {
            backend_uuid: self.backend_uuid().to_string(),
            ..RawRequest::default()
        }
    }

    /// Starts the [`ticker`](Backend::ticker), once: the host calls `Initialize` when storage
    /// becomes usable (after `Setup`, and again after a crashed plugin is restarted). It stops
    /// when the backend is dropped (`Cleanup`, unmount).
    pub fn start(&self, storage: Storage, system: SystemView) {
        let Some(ticker) = &self.ticker else {
            return;
        };
        let Ok(mut task) = self.ticker_task.lock() else {
            return;
        };
        if task.is_some() {
            return;
        }
        let (raw, state, run, clock, every) = (
            self.ticker_request(),
            self.state.clone(),
            ticker.run.clone(),
            self.clock.clone(),
            ticker.every,
        );
        let handle = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                tick(&raw, &state, &run, &clock, &storage, &system).await;
            }
        });
        *task = Some(handle.abort_handle());
    }

    /// Runs the ticker's work once now, as the ticker would (tests drive time themselves).
    pub async fn tick(&self, storage: &Storage, system: &SystemView) {
        if let Some(ticker) = &self.ticker {
            let raw = self.ticker_request();
            tick(&raw, &self.state, &ticker.run, &self.clock, storage, system).await;
        }
    }

    /// The plugin's shared state.
    pub fn state(&self) -> &Arc<S> {
        &self.state
    }

    /// Handles one host request.
    pub async fn handle_request(
        &self,
        mut raw: RawRequest,
        storage: Storage,
        system: SystemView,
    ) -> Result<Option<Response>> {
        raw.backend_uuid = self.backend_uuid().to_string();
        let operation = Operation::from_wire(&raw.operation);
        match operation {
            // We never rewrite paths; "unsupported operation" tells OpenBao to carry on.
            Operation::ResolvePath => Err(Error::UnsupportedOperation),
            Operation::Help => Ok(Some(help::respond(self, &raw))),
            Operation::Rollback => {
                // Every HA node gets the tick, but only the active one may act on it: a standby's
                // storage lags and is read-only, and its side effects would race the active
                // node's. (Go's framework leaves this to each plugin.)
                if system.is_standby().await? {
                    tracing::debug!("rollback tick on a standby: nothing to do");
                    return Ok(None);
                }
                // As in Go's framework: the periodic function, then the WAL rollback; one
                // failing does not skip the other.
                let periodic = self.run_periodic(&raw, &storage, &system).await;
                wal::rollback(self, raw, storage, system).await?;
                periodic?;
                Ok(None)
            }
            Operation::Renew | Operation::Revoke => {
                self.handle_secret(operation, raw, storage, system).await
            }
            _ => self.handle_path(operation, raw, storage, system).await,
        }
    }

    /// Answers the host's existence check: `None` when the path has no check (the host then
    /// treats every write as an update).
    pub async fn existence_check(
        &self,
        mut raw: RawRequest,
        storage: Storage,
        system: SystemView,
    ) -> Result<Option<bool>> {
        raw.backend_uuid = self.backend_uuid().to_string();
        // Field values are not checked here: a bad value must fail the write itself with a 400
        // naming the field, while a failed existence check would be a 500.
        let (path, request) =
            self.route(Operation::Update, raw, storage, system, Coercion::Lenient)?;
        match &path.existence_check {
            Some(check) => Ok(Some(check(self.state.clone(), request).await?)),
            None => Ok(None),
        }
    }

    /// Tells the backend that `key` changed in storage.
    pub fn invalidate_key(&self, key: &str) {
        if let Some(invalidate) = &self.invalidate {
            invalidate(&self.state, key);
        }
    }

    async fn run_periodic(
        &self,
        raw: &RawRequest,
        storage: &Storage,
        system: &SystemView,
    ) -> Result<()> {
        let Some(periodic) = &self.periodic else {
            return Ok(());
        };
        let request = Request::internal(raw, storage, system, self.clock.now());
        periodic(self.state.clone(), request)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "periodic function failed"))
    }

    async fn handle_path(
        &self,
        operation: Operation,
        raw: RawRequest,
        storage: Storage,
        system: SystemView,
    ) -> Result<Option<Response>> {
        let (path, request) = self.route(operation, raw, storage, system, Coercion::Strict)?;
        // A create on a path without its own create handler is an update, as for paths
        // without an existence check.
        let handler = path
            .handler(operation)
            .or_else(|| {
                (operation == Operation::Create)
                    .then(|| path.handler(Operation::Update))
                    .flatten()
            })
            .ok_or(Error::UnsupportedOperation)?;
        let unknown = request.data.unknown_fields_warning();
        let response = handler(self.state.clone(), request).await?;
        Ok(match unknown {
            Some(warning) => Some(response.unwrap_or_default().warn(warning)),
            None => response,
        })
    }

    async fn handle_secret(
        &self,
        operation: Operation,
        raw: RawRequest,
        storage: Storage,
        system: SystemView,
    ) -> Result<Option<Response>> {
        let secret = raw
            .secret
            .as_ref()
            .ok_or_else(|| Error::bad_request(format!("{operation} request without a lease")))?;
        let type_name = secret.secret_type().unwrap_or_default();
        let secret_type = self
            .secrets
            .iter()
            .find(|s| s.name == type_name)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "secret type {type_name:?} is not supported by this backend"
                ))
            })?;
        let handler = match operation {
            Operation::Renew => secret_type
                .renew
                .as_ref()
                .ok_or_else(|| Error::bad_request("lease is not renewable"))?,
            _ => &secret_type.revoke,
        };
        let now = self.clock.now();
        let request = Request::new(operation, raw, FieldData::empty(), storage, system, now);
        handler(self.state.clone(), request).await
    }

    /// Finds the path for `raw.path` and builds the handler's request, coercing the input.
    fn route(
        &self,
        operation: Operation,
        mut raw: RawRequest,
        storage: Storage,
        system: SystemView,
        coercion: Coercion,
    ) -> Result<(&Path<S>, Request)> {
        let (path, captures) = self
            .paths
            .iter()
            .find_map(|p| p.matches(&raw.path).map(|c| (p, c)))
            .ok_or(Error::UnsupportedPath)?;
        let input = std::mem::take(&mut raw.data);
        let mut data = match (FieldData::parse(path.fields, input), coercion) {
            (Ok(data), _) => data,
            (Err(_), Coercion::Lenient) => FieldData::parse(path.fields, Map::new())?,
            (Err(e), Coercion::Strict) => return Err(e.into()),
        };
        for (name, value) in captures {
            data.insert_capture(name, value);
        }
        let request = Request::new(operation, raw, data, storage, system, self.clock.now());
        Ok((path, request))
    }
}
