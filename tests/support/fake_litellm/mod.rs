//! A stateful, in-process fake of the LiteLLM proxy's virtual-key API, for tests and benchmarks.
//!
//! It reproduces what LiteLLM 1.108.7 does on the routes the plugin uses (see
//! `shared/docs/litellm-api.md`; status codes and error bodies were compared with a real
//! proxy): `/key/generate`, `/key/update`, `/key/delete`, `/key/info`, `/key/list`,
//! `/key/block`, `/key/unblock`, `/v1/models` (and `/models`), `/model/info`, `/health/*`. The quirks are
//! deliberate: a bare-number `duration` is a 500, `duration: null` on update makes a key
//! immortal, a delete that matches nothing is a 404 whose message is a Python dict repr,
//! deleted keys stay visible in `/key/info` with `status: "deleted"`, timestamps come back
//! in the formats LiteLLM uses on each route (whole milliseconds from the database, without a
//! fraction on a whole second, as Python prints them).
//!
//! Known, intended differences from the real proxy: the fake's alias-uniqueness check is
//! atomic (the real one races, so concurrent generates can create duplicates); `"mo"`
//! durations count calendar months in UTC; only the fields the plugin may send are modelled
//! (others are accepted and ignored, which is also what LiteLLM does with unknown fields).
//!
//! Virtual keys are not admins unless their `user_id` was made a proxy admin with
//! [`FakeLiteLlm::add_proxy_admin`] (the real proxy's `/user/new {"user_role": "proxy_admin"}`,
//! which the fake does not serve); such keys manage keys like the master key, except
//! `llm_api` ones. `GET /key/info` without `key` answers with the caller's own key, and with a
//! 404 for the master key, as the real proxy does.
//!
//! Test hooks: inspection ([`FakeLiteLlm::live_keys`], [`FakeLiteLlm::find_by_alias`], …),
//! per-route request counters ([`FakeLiteLlm::requests`]), fault injection
//! ([`FakeLiteLlm::set_fault`], [`FakeLiteLlm::fail_next_n`]), a movable clock
//! ([`FakeLiteLlm::advance_clock`]) and [`FakeLiteLlm::stop`]/[`FakeLiteLlm::restart`] on the
//! same port with the key database kept, to simulate an outage.
//!
//! The server listens on 127.0.0.1 only and runs on a thread of its own, with a current-thread
//! tokio runtime: the handle is synchronous, and a test that blocks its own thread (a `bao` CLI
//! call the plugin answers by calling the fake) cannot starve it. State is one
//! `std::sync::Mutex` held for microseconds per request and never across an `.await`.
//!
//! Layout: this module holds the handle and its test hooks; [`state`] the key database,
//! faults and clock; [`conn`] the killable connections; [`dispatch`] authentication and
//! routing; [`routes`] one module per route; [`shapes`] the JSON bodies; [`time`] keys,
//! durations and timestamps.

// The hooks are an API: the engine tier, the end-to-end tier and the benchmark each use a part.
#![allow(dead_code)]

mod conn;
mod dispatch;
mod routes;
mod shapes;
mod state;
mod time;

use conn::*;
use dispatch::*;
use routes::*;
use shapes::*;
use state::*;
use time::*;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::serve::IncomingStream;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Models the fake proxy is configured with (same names as the local real proxy).
pub const FAKE_MODELS: [&str; 3] = ["fake-gpt", "fake-claude", "fake-priced"];

/// A route family, for request counters and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `POST /key/generate`
    Generate,
    /// `POST /key/update`
    Update,
    /// `POST /key/delete`
    Delete,
    /// `GET /key/info`
    Info,
    /// `GET /key/list`
    List,
    /// `POST /key/block` and `/key/unblock`
    Block,
    /// `GET /v1/models`, `/models`
    Models,
    /// `GET /model/info`
    ModelInfo,
    /// `GET /health/*`
    Health,
    /// `POST /team/new`
    TeamNew,
    /// `POST /team/update`
    TeamUpdate,
    /// `POST /team/delete`
    TeamDelete,
    /// `GET /team/info`
    TeamInfo,
    /// `POST /team/member_add`
    MemberAdd,
    /// Every route: a fault set here applies where no route-specific fault is set;
    /// `requests(Op::Any)` is the total.
    Any,
}

impl Op {
    pub(crate) const COUNT: usize = 15;

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// An injected failure. Faults that say "processed" apply the request's effect first, which
/// is what a real proxy does when its database write commits but the answer is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault.
    None,
    /// Answer with this status and a LiteLLM-shaped error body; not processed.
    Status(u16),
    /// Answer with this exact status and body (e.g. one that echoes a key); not processed.
    Body {
        /// HTTP status.
        status: u16,
        /// Raw body, sent as `application/json`.
        body: String,
    },
    /// `200` with an HTML body, like a misconfigured gateway; not processed.
    NonJson,
    /// Processed; the real answer's first half is sent under a `Content-Length` of the whole,
    /// then the connection is closed.
    Truncated,
    /// Processed, then the answer is held back this long (client timeouts see the effect done).
    Delay(Duration),
    /// The connection is closed without any response; not processed.
    Reset,
    /// Processed, then the connection is closed without any response.
    LoseResponse,
}

/// A team as the fake stores it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeamRecord {
    /// The team's id.
    pub team_id: String,
    /// Its alias (not unique in LiteLLM).
    pub team_alias: Option<String>,
    /// The limits last set, by LiteLLM field name (`max_budget`, `team_member_budget`, …).
    pub limits: Map<String, Value>,
    /// Replaced whole on update, as in LiteLLM.
    pub metadata: Map<String, Value>,
    /// Members added with `/team/member_add` (LiteLLM's `default_user_id` not included).
    pub members: BTreeSet<String>,
}

impl TeamRecord {
    pub(crate) fn to_json(&self) -> Value {
        let mut team = self.limits.clone();
        team.insert("team_id".into(), json!(self.team_id));
        team.insert("team_alias".into(), json!(self.team_alias));
        team.insert("metadata".into(), Value::Object(self.metadata.clone()));
        team.insert("spend".into(), json!(0.0));
        Value::Object(team)
    }
}

/// A key as the fake stores it (no secret: like LiteLLM, only the hash is kept).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    /// SHA-256 hex of the key.
    pub token: String,
    /// `sk-...` + last 4 characters of the key.
    pub key_name: String,
    /// Alias.
    pub key_alias: Option<String>,
    /// Allowed models (empty = all).
    pub models: Vec<String>,
    /// Spend limit.
    pub max_budget: Option<f64>,
    /// Spend-reset window.
    pub budget_duration: Option<String>,
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
    /// Metadata (replaced whole on update).
    pub metadata: Map<String, Value>,
    /// `default`, `llm_api`, `management` or `read_only`.
    pub key_type: String,
    /// Expiry (millisecond precision, as stored by LiteLLM's database); `None` = never.
    pub expires: Option<SystemTime>,
    /// `None` until blocked or unblocked, as in LiteLLM.
    pub blocked: Option<bool>,
    /// Spend so far (always 0: the fake serves no completions).
    pub spend: f64,
    /// Creation time.
    pub created_at: SystemTime,
    /// Last change.
    pub updated_at: SystemTime,
    /// Deletion time, for archived keys.
    pub deleted_at: Option<SystemTime>,
    /// Further fields as `/key/info` shows them (`aliases`, `allowed_routes`, the soft budget's
    /// `litellm_budget_table`, …), over the defaults.
    pub extra: Map<String, Value>,
    pub(crate) seq: u64,
}

/// Handle to a running fake proxy. Dropping it stops the server and its thread.
pub struct FakeLiteLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: Runtime,
    server: Option<Server>,
}

/// The fake's own thread and its current-thread runtime; stopped on drop.
struct Runtime {
    handle: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    fn start() -> io::Result<Runtime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-litellm".into())
            .spawn(move || {
                // Spawned tasks (the server, its connections) run while this waits.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Runtime {
            handle,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The serving task, and a receiver that disconnects once the task (and its listener) is gone.
struct Server {
    task: JoinHandle<()>,
    // In a mutex only so the handle is `Sync` (tests share it through an `Arc`).
    gone: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl FakeLiteLlm {
    /// Starts a fake on `127.0.0.1:<random port>` that accepts `master_key` as admin.
    pub fn start(master_key: &str) -> io::Result<FakeLiteLlm> {
        let shared = Arc::new(Shared {
            master_key: master_key.to_owned(),
            db: Mutex::new(Db::default()),
            faults: Mutex::new(HashMap::new()),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            clock_offset_ms: AtomicU64::new(0),
            frozen_at_ms: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            proxy_admins: Mutex::new(HashSet::new()),
            custom_keys_disabled: AtomicBool::new(false),
            extra_models: Mutex::new(Vec::new()),
        });
        let mut fake = FakeLiteLlm {
            shared,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            runtime: Runtime::start()?,
            server: None,
        };
        fake.listen()?;
        Ok(fake)
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin key.
    pub fn master_key(&self) -> &str {
        &self.shared.master_key
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops listening and drops every open connection (idle keep-alive ones at once,
    /// busy ones when they next write), so clients see a dead proxy. Keys are kept.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.task.abort();
            // The sender lives in the task: once it is dropped, so is the listening socket.
            let _ = server.gone.into_inner().map(|gone| gone.recv());
        }
        self.shared.kill_connections();
    }

    /// Stops (if running) and listens again on the same port with the same keys, like a
    /// proxy coming back after an outage.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.listen()
    }

    fn listen(&mut self) -> io::Result<()> {
        // Sockets register with the reactor of the runtime they are created in: the fake's.
        let _runtime = self.runtime.handle.enter();
        let socket = TcpSocket::new_v4()?;
        // Rebinding the port of a just-closed listener must not wait for TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        let listener = socket.listen(1024)?;
        self.addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let listener = FakeListener {
            inner: listener,
            shared: self.shared.clone(),
        };
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnHandle>(),
        );
        let (alive, gone) = std::sync::mpsc::channel::<()>();
        let task = self.runtime.handle.spawn(async move {
            let _alive = alive;
            let _ = serve.await;
        });
        self.server = Some(Server {
            task,
            gone: Mutex::new(gone),
        });
        Ok(())
    }

    /// Sets `general_settings.disable_custom_api_keys`: generate then refuses a caller's `key`
    /// with 403, as the real proxy does.
    pub fn disable_custom_keys(&self, disabled: bool) {
        self.shared
            .custom_keys_disabled
            .store(disabled, Ordering::Relaxed);
    }

    /// Serves one more model (the real proxy's `model_list` entry `model_name`), in the
    /// model access groups `access_groups` (its `model_info.access_groups`). A name such as
    /// `openai/*` is a wildcard deployment.
    pub fn add_model(&self, name: &str, access_groups: &[&str]) {
        let mut extra = self
            .shared
            .extra_models
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        extra.push((
            name.to_owned(),
            access_groups.iter().map(|g| (*g).to_owned()).collect(),
        ));
    }

    /// Makes `user_id` a proxy admin (`user_role: proxy_admin`): its virtual keys may then
    /// generate, update, delete, list and look up any key, as on the real proxy.
    pub fn add_proxy_admin(&self, user_id: &str) {
        self.shared
            .proxy_admins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id.to_owned());
    }

    /// Snapshot of all live (not deleted) keys, oldest first.
    pub fn live_keys(&self) -> Vec<KeyRecord> {
        let db = self.shared.db();
        let mut keys: Vec<KeyRecord> = db.live.values().cloned().collect();
        keys.sort_by_key(|k| k.seq);
        keys
    }

    /// Snapshot of the deleted-keys archive.
    pub fn deleted_keys(&self) -> Vec<KeyRecord> {
        let db = self.shared.db();
        let mut keys: Vec<KeyRecord> = db.deleted.values().cloned().collect();
        keys.sort_by_key(|k| k.seq);
        keys
    }

    /// Number of live keys.
    pub fn key_count(&self) -> usize {
        self.shared.db().live.len()
    }

    /// The live key with this alias, if any.
    pub fn find_by_alias(&self, alias: &str) -> Option<KeyRecord> {
        self.shared.db().by_alias(alias).cloned()
    }

    /// The live key with this hash, if any.
    pub fn get(&self, token: &str) -> Option<KeyRecord> {
        self.shared.db().live.get(token).cloned()
    }

    /// Team `team_id`, if it exists.
    pub fn team(&self, team_id: &str) -> Option<TeamRecord> {
        self.shared.db().teams.get(team_id).cloned()
    }

    /// Ids of all teams, sorted.
    pub fn team_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.db().teams.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Sets a persistent fault for `op` (`Fault::None` clears it).
    pub fn set_fault(&self, op: Op, fault: Fault) {
        let mut faults = self.shared.faults();
        if fault == Fault::None {
            faults.remove(&op);
        } else {
            faults.insert(
                op,
                FaultSlot {
                    fault,
                    remaining: None,
                    skip: 0,
                },
            );
        }
    }

    /// Applies `fault` to the next `n` requests of `op`, then clears it.
    pub fn fail_next_n(&self, op: Op, fault: Fault, n: u32) {
        let mut faults = self.shared.faults();
        if n == 0 || fault == Fault::None {
            faults.remove(&op);
        } else {
            faults.insert(
                op,
                FaultSlot {
                    fault,
                    remaining: Some(n),
                    skip: 0,
                },
            );
        }
    }

    /// Lets the next `skip` requests of `op` through, then applies `fault` to one.
    pub fn fail_after(&self, op: Op, skip: u32, fault: Fault) {
        self.shared.faults().insert(
            op,
            FaultSlot {
                fault,
                remaining: Some(1),
                skip,
            },
        );
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Requests received for `op` (all routes for `Op::Any`), faulted ones included.
    pub fn requests(&self, op: Op) -> u64 {
        self.shared.counters[op.index()].load(Ordering::Relaxed)
    }

    /// Resets all request counters to zero.
    pub fn reset_counters(&self) {
        for c in &self.shared.counters {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Moves the fake's clock forward (expiry checks, `expires` computations).
    pub fn advance_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.shared.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Stops the fake's clock at `at` (whole milliseconds): from then on only
    /// [`FakeLiteLlm::advance_clock`] moves it, as a manual clock of the engine's moves.
    pub fn freeze_clock(&self, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(1)
            .max(1);
        self.shared.clock_offset_ms.store(0, Ordering::Relaxed);
        self.shared.frozen_at_ms.store(ms, Ordering::Relaxed);
    }

    /// The fake's current time.
    pub fn now(&self) -> SystemTime {
        self.shared.now()
    }
}

impl Drop for FakeLiteLlm {
    fn drop(&mut self) {
        self.stop();
        // Then `runtime` drops: the thread ends and any task left with it.
    }
}
