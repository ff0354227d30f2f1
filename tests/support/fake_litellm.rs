//! A stateful, in-process fake of the LiteLLM proxy's virtual-key API, for tests and benchmarks.
//!
//! It reproduces what LiteLLM 1.108.7 does on the routes the plugin uses (see
//! `shared/docs/litellm-api.md`; status codes and error bodies were compared with a real
//! proxy): `/key/generate`, `/key/update`, `/key/delete`, `/key/info`, `/key/list`,
//! `/key/block`, `/key/unblock`, `/v1/models` (and `/models`), `/health/*`. The quirks are
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
//! The server listens on 127.0.0.1 only and runs on the caller's tokio runtime. State is one
//! `std::sync::Mutex` held for microseconds per request and never across an `.await`.

#![allow(dead_code)] // each integration-test crate uses a different subset

use std::collections::{HashMap, HashSet};
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
pub const FAKE_MODELS: [&str; 2] = ["fake-gpt", "fake-claude"];

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
    /// `GET /health/*`
    Health,
    /// Every route: a fault set here applies where no route-specific fault is set;
    /// `requests(Op::Any)` is the total.
    Any,
}

impl Op {
    const COUNT: usize = 9;

    fn index(self) -> usize {
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
    seq: u64,
}

/// Handle to a running fake proxy. Dropping it stops the server.
pub struct FakeLiteLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl FakeLiteLlm {
    /// Starts a fake on `127.0.0.1:<random port>` that accepts `master_key` as admin.
    pub async fn start(master_key: &str) -> io::Result<FakeLiteLlm> {
        let shared = Arc::new(Shared {
            master_key: master_key.to_owned(),
            db: Mutex::new(Db::default()),
            faults: Mutex::new(HashMap::new()),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            clock_offset_ms: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            proxy_admins: Mutex::new(HashSet::new()),
            custom_keys_disabled: AtomicBool::new(false),
        });
        let mut fake = FakeLiteLlm {
            shared,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: None,
        };
        fake.listen().await?;
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
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Awaiting the aborted task guarantees the listening socket is closed on return.
            let _ = server.await;
        }
        self.shared.kill_connections();
    }

    /// Stops (if running) and listens again on the same port with the same keys, like a
    /// proxy coming back after an outage.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        self.listen().await
    }

    async fn listen(&mut self) -> io::Result<()> {
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
        self.server = Some(tokio::spawn(async move {
            let _ = serve.await;
        }));
        Ok(())
    }

    /// Sets `general_settings.disable_custom_api_keys`: generate then refuses a caller's `key`
    /// with 403, as the real proxy does.
    pub fn disable_custom_keys(&self, disabled: bool) {
        self.shared
            .custom_keys_disabled
            .store(disabled, Ordering::Relaxed);
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
                },
            );
        }
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

    /// The fake's current time.
    pub fn now(&self) -> SystemTime {
        self.shared.now()
    }
}

impl Drop for FakeLiteLlm {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.shared.kill_connections();
    }
}

// === state ===

struct Shared {
    master_key: String,
    db: Mutex<Db>,
    faults: Mutex<HashMap<Op, FaultSlot>>,
    counters: [AtomicU64; Op::COUNT],
    clock_offset_ms: AtomicU64,
    conns: Mutex<Vec<Weak<ConnCtl>>>,
    /// User ids with `user_role: proxy_admin`.
    proxy_admins: Mutex<HashSet<String>>,
    /// `general_settings.disable_custom_api_keys`.
    custom_keys_disabled: AtomicBool,
}

#[derive(Default)]
struct Db {
    live: HashMap<String, KeyRecord>,
    deleted: HashMap<String, KeyRecord>,
    /// alias → tokens of live keys, so alias checks stay O(1) with many keys (benchmarks).
    by_alias: HashMap<String, HashSet<String>>,
    seq: u64,
}

impl Db {
    fn insert(&mut self, record: KeyRecord) {
        if let Some(alias) = &record.key_alias {
            self.by_alias
                .entry(alias.clone())
                .or_default()
                .insert(record.token.clone());
        }
        self.live.insert(record.token.clone(), record);
    }

    fn remove(&mut self, token: &str) -> Option<KeyRecord> {
        let record = self.live.remove(token)?;
        if let Some(alias) = &record.key_alias {
            self.unindex(alias, token);
        }
        Some(record)
    }

    fn set_alias(&mut self, token: &str, alias: Option<String>) {
        let Some(record) = self.live.get_mut(token) else {
            return;
        };
        let old = std::mem::replace(&mut record.key_alias, alias.clone());
        if let Some(old) = old {
            self.unindex(&old, token);
        }
        if let Some(alias) = alias {
            self.by_alias
                .entry(alias)
                .or_default()
                .insert(token.to_owned());
        }
    }

    fn unindex(&mut self, alias: &str, token: &str) {
        if let Some(tokens) = self.by_alias.get_mut(alias) {
            tokens.remove(token);
            if tokens.is_empty() {
                self.by_alias.remove(alias);
            }
        }
    }

    /// The oldest live key with this alias (aliases are unique here, but not always upstream).
    fn by_alias(&self, alias: &str) -> Option<&KeyRecord> {
        self.by_alias
            .get(alias)?
            .iter()
            .filter_map(|t| self.live.get(t))
            .min_by_key(|k| k.seq)
    }

    fn alias_taken(&self, alias: &str, except: Option<&str>) -> bool {
        self.by_alias
            .get(alias)
            .is_some_and(|tokens| tokens.iter().any(|t| Some(t.as_str()) != except))
    }
}

struct FaultSlot {
    fault: Fault,
    remaining: Option<u32>,
}

impl Shared {
    // A panic while holding a lock must not wedge every later request of the test.
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, HashMap<Op, FaultSlot>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Whether a virtual key may manage keys: its owner is a proxy admin and its type does not
    /// confine it to LLM routes (an `llm_api` key never may, whoever owns it).
    fn is_admin_key(&self, key: &KeyRecord) -> bool {
        key.key_type != "llm_api"
            && key.user_id.as_ref().is_some_and(|user| {
                self.proxy_admins
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(user)
            })
    }

    fn count(&self, op: Op) {
        self.counters[op.index()].fetch_add(1, Ordering::Relaxed);
        self.counters[Op::Any.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The fault for this request, consuming one use of a counted fault.
    fn take_fault(&self, op: Op) -> Fault {
        let mut faults = self.faults();
        let slot_op = if faults.contains_key(&op) {
            op
        } else {
            Op::Any
        };
        let Some(slot) = faults.get_mut(&slot_op) else {
            return Fault::None;
        };
        let fault = slot.fault.clone();
        if let Some(n) = slot.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(&slot_op);
            }
        }
        fault
    }

    fn kill_connections(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.kill();
        }
    }
}

// === connections: a listener whose sockets the fake can cut ===

/// Per-connection kill switch, reachable from handlers (for `Reset`) and from `stop()`.
struct ConnCtl {
    killed: AtomicBool,
    read_waker: Mutex<Option<Waker>>,
    /// For `Truncated`: how many bytes of the next response body may go out before the
    /// connection is cut (`usize::MAX` = no limit).
    truncate_body_to: AtomicUsize,
}

impl Default for ConnCtl {
    fn default() -> Self {
        Self {
            killed: AtomicBool::new(false),
            read_waker: Mutex::new(None),
            truncate_body_to: AtomicUsize::new(usize::MAX),
        }
    }
}

impl ConnCtl {
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let waker = self
            .read_waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // Wakes hyper's idle read so it sees end-of-stream and closes the socket now.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

struct FakeListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for FakeListener {
    type Io = FakeConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let ctl = Arc::new(ConnCtl::default());
                    let mut conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                    conns.retain(|c| c.strong_count() > 0);
                    conns.push(Arc::downgrade(&ctl));
                    return (
                        FakeConn {
                            stream,
                            ctl,
                            cut: None,
                        },
                        addr,
                    );
                }
                // E.g. out of file descriptors under a benchmark: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that reads end-of-stream and fails writes once killed.
struct FakeConn {
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
    /// Bytes still allowed out before a truncation cut, once the cut point is known.
    cut: Option<usize>,
}

impl FakeConn {
    /// How much of `buf` may be written now, arming a truncation cut when the response's
    /// header block ends inside `buf` (hyper writes each header block in one buffer).
    fn allowance(&mut self, buf: &[u8]) -> usize {
        if self.cut.is_none() {
            let body_limit = self.ctl.truncate_body_to.load(Ordering::SeqCst);
            if body_limit == usize::MAX {
                return buf.len();
            }
            match buf.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(i) => self.cut = Some(i + 4 + body_limit),
                None => return buf.len(),
            }
        }
        self.cut.map_or(buf.len(), |rem| rem.min(buf.len()))
    }
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection cut by FakeLiteLlm",
    )
}

impl AsyncRead for FakeConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Ok(()));
        }
        {
            let mut slot = this
                .ctl
                .read_waker
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        // Re-check: a kill between the first check and storing the waker found no waker.
        if this.ctl.is_killed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FakeConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        let allowed = this.allowance(buf);
        if allowed == 0 && !buf.is_empty() {
            this.ctl.kill();
            return Poll::Ready(Err(killed_error()));
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, &buf[..allowed]);
        if let (Poll::Ready(Ok(n)), Some(rem)) = (&written, this.cut.as_mut()) {
            *rem = rem.saturating_sub(*n);
            if *rem == 0 {
                // Everything allowed is out: close, leaving the client short of Content-Length.
                this.ctl.kill();
            }
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.truncate_body_to.load(Ordering::SeqCst) != usize::MAX {
            // Truncation needs byte-exact accounting: write one slice at a time.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Connection handle given to handlers through `ConnectInfo`.
#[derive(Clone)]
struct ConnHandle(Arc<ConnCtl>);

impl Connected<IncomingStream<'_, FakeListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, FakeListener>) -> Self {
        ConnHandle(stream.io().ctl.clone())
    }
}

// === request handling ===

type Reply = (StatusCode, Value);

/// Who is calling.
enum Caller {
    Master,
    Virtual(Box<KeyRecord>),
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let (op, allowed) = match path {
        "/key/generate" => (Op::Generate, Method::POST),
        "/key/update" => (Op::Update, Method::POST),
        "/key/delete" => (Op::Delete, Method::POST),
        "/key/info" => (Op::Info, Method::GET),
        "/key/list" => (Op::List, Method::GET),
        "/key/block" | "/key/unblock" => (Op::Block, Method::POST),
        "/v1/models" | "/models" => (Op::Models, Method::GET),
        "/health/liveliness" | "/health/liveness" | "/health/readiness" => {
            (Op::Health, Method::GET)
        }
        _ => return json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not Found"})),
    };
    if method != allowed {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"detail": "Method Not Allowed"}),
        );
    }
    shared.count(op);

    let fault = shared.take_fault(op);
    match &fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json_response(
                status,
                &litellm_error(
                    status,
                    "fault injected by FakeLiteLlm",
                    "internal_server_error",
                    Value::Null,
                ),
            );
        }
        Fault::Body { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return raw_response(status, "application/json", body.clone());
        }
        Fault::NonJson => {
            return raw_response(
                StatusCode::OK,
                "text/html",
                "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned(),
            );
        }
        Fault::Reset => {
            conn.0.kill();
            return raw_response(StatusCode::OK, "text/plain", String::new());
        }
        Fault::None | Fault::Truncated | Fault::Delay(_) | Fault::LoseResponse => {}
    }

    let query = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let (status, value) = if op == Op::Health {
        health(path)
    } else {
        match authenticate(&shared, &headers) {
            Err(reply) => reply,
            Ok(caller) => route(&shared, op, path, &caller, &query, &body),
        }
    };

    match fault {
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::LoseResponse => {
            conn.0.kill();
            return raw_response(StatusCode::OK, "text/plain", String::new());
        }
        Fault::Truncated => {
            // The connection lets half of the body out, then closes under the full
            // Content-Length.
            let full = value.to_string();
            conn.0
                .truncate_body_to
                .store(full.len() / 2, Ordering::SeqCst);
            return raw_response(status, "application/json", full);
        }
        _ => {}
    }
    if is_unhandled_exception(status, &value) {
        // uvicorn drops the keep-alive connection after an unhandled exception's 500, without
        // a `Connection: close`; a client that reuses it at once gets a reset.
        conn.0
            .truncate_body_to
            .store(value.to_string().len(), Ordering::SeqCst);
    }
    json_response(status, &value)
}

fn unhandled_exception() -> Value {
    json!({"error": {"message": "Internal server error", "type": "internal_server_error"}})
}

fn is_unhandled_exception(status: StatusCode, value: &Value) -> bool {
    status == StatusCode::INTERNAL_SERVER_ERROR && *value == unhandled_exception()
}

fn route(
    shared: &Shared,
    op: Op,
    path: &str,
    caller: &Caller,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Reply {
    if let Caller::Virtual(key) = caller
        && !shared.is_admin_key(key)
        && let Some(reply) = virtual_key_route_check(key, op, path)
    {
        return reply;
    }
    let now = shared.now();
    match op {
        Op::Generate => with_object(body, |obj| generate(shared, obj, now)),
        Op::Update => with_object(body, |obj| update(shared, obj, now)),
        Op::Delete => with_object(body, |obj| delete(shared, obj, now)),
        Op::Block => with_object(body, |obj| block(shared, obj, path == "/key/block", now)),
        Op::Info => info(shared, caller, query, now),
        Op::List => list(shared, query, now),
        Op::Models => models(caller),
        Op::Health | Op::Any => health(path),
    }
}

fn health(path: &str) -> Reply {
    if path == "/health/readiness" {
        (
            StatusCode::OK,
            json!({"status": "healthy", "db": "connected"}),
        )
    } else {
        (StatusCode::OK, json!("I'm alive!"))
    }
}

/// LiteLLM's `user_api_key_auth`, for the cases the plugin can meet.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Reply> {
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let strip_bearer = |v: &str| -> Option<String> {
        let lower = v.to_ascii_lowercase();
        ["bearer ", "basic "]
            .iter()
            .find(|p| lower.starts_with(*p))
            .and_then(|p| v.get(p.len()..))
            .map(|rest| rest.trim().to_owned())
    };
    let presented = if let Some(v) = header_str("authorization") {
        match strip_bearer(v) {
            Some(k) => k,
            None => {
                return Err(auth_error(
                    "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
                    "auth_error",
                    "None",
                ));
            }
        }
    } else if let Some(v) = header_str("x-litellm-api-key").or_else(|| header_str("api-key")) {
        strip_bearer(v).unwrap_or_else(|| v.to_owned())
    } else {
        String::new()
    };
    if presented.is_empty() {
        return Err(auth_error(
            "Authentication Error, No api key passed in.",
            "auth_error",
            "None",
        ));
    }
    if presented == shared.master_key {
        return Ok(Caller::Master);
    }
    let invalid = || {
        auth_error(
            "Authentication Error, Invalid API key provided.",
            "token_not_found_in_db",
            "key",
        )
    };
    if !presented.starts_with("sk-") {
        return Err(invalid());
    }
    let token = sha256_hex(&presented);
    let Some(key) = shared.db().live.get(&token).cloned() else {
        return Err(invalid());
    };
    if key.blocked == Some(true) {
        return Err(auth_error(
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
            "auth_error",
            "None",
        ));
    }
    let now = shared.now();
    if let Some(expires) = key.expires.filter(|e| *e < now) {
        let message = format!(
            "Authentication Error - Expired Key. Key Expiry time {} and current time {}",
            py_datetime(expires),
            py_datetime(now)
        );
        let param = format!(
            "sk-...{}",
            token
                .get(token.len().saturating_sub(4)..)
                .unwrap_or_default()
        );
        return Err(auth_error(&message, "expired_key", &param));
    }
    Ok(Caller::Virtual(Box::new(key)))
}

fn auth_error(message: &str, kind: &str, param: &str) -> Reply {
    (
        StatusCode::UNAUTHORIZED,
        json!({"error": {"message": message, "type": kind, "param": param, "code": "401"}}),
    )
}

/// What a non-admin virtual key may do on each route.
fn virtual_key_route_check(key: &KeyRecord, op: Op, path: &str) -> Option<Reply> {
    let management = matches!(
        op,
        Op::Generate | Op::Update | Op::Delete | Op::Info | Op::List | Op::Block
    );
    if key.key_type == "llm_api" && management {
        return Some((
            StatusCode::FORBIDDEN,
            json!({"detail": format!(
                "Virtual key is not allowed to call this route. Only allowed to call routes: ['llm_api_routes']. Tried to call route: {path}"
            )}),
        ));
    }
    match op {
        Op::Generate | Op::Update | Op::Delete | Op::Block => Some((
            StatusCode::UNAUTHORIZED,
            json!({"error": {
                "message": format!("Authentication Error, Only proxy admin can be used to generate, delete, update info for new keys/users/teams. Route={path}. Your role=unknown. Your user_id=*******"),
                "type": "auth_error", "param": "None", "code": "401"
            }}),
        )),
        Op::List => Some((
            StatusCode::FORBIDDEN,
            litellm_error(
                StatusCode::FORBIDDEN,
                "You are not authorized to access this endpoint. No 'user_id' is associated with your API key.",
                "bad_request_error",
                json!("user_id"),
            ),
        )),
        _ => None,
    }
}

// === /key/generate ===

/// Fields both generate and update validate like pydantic does (422 on wrong types).
struct KeyFields {
    key_alias: Option<Option<String>>,
    duration: Option<Option<String>>,
    models: Option<Vec<String>>,
    max_budget: Option<Option<f64>>,
    budget_duration: Option<Option<String>>,
    tpm_limit: Option<Option<i64>>,
    rpm_limit: Option<Option<i64>>,
    max_parallel_requests: Option<Option<i64>>,
    team_id: Option<Option<String>>,
    user_id: Option<Option<String>>,
    metadata: Option<Map<String, Value>>,
    key_type: Option<String>,
    key: Option<String>,
    blocked: Option<Option<bool>>,
}

fn parse_fields(obj: &Map<String, Value>) -> Result<KeyFields, Reply> {
    let mut errors = Vec::new();
    let mut string = |name: &str| -> Option<Option<String>> {
        match obj.get(name)? {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => {
                errors.push(validation(
                    "string_type",
                    &["body", name],
                    "Input should be a valid string",
                ));
                None
            }
        }
    };
    let key_alias = string("key_alias");
    let duration = string("duration");
    let budget_duration = string("budget_duration");
    let team_id = string("team_id");
    let user_id = string("user_id");
    let key = string("key").flatten();
    let key_type_raw = string("key_type");

    let models = match obj.get("models") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => errors.push(json!({"type": "string_type", "loc": ["body", "models", i], "msg": "Input should be a valid string"})),
                }
            }
            Some(out)
        }
        Some(_) => {
            errors.push(validation(
                "list_type",
                &["body", "models"],
                "Input should be a valid list",
            ));
            None
        }
    };
    let max_budget = match obj.get("max_budget") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => n.as_f64().map(Some),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) => Some(Some(v)),
            Err(_) => {
                errors.push(validation(
                    "float_parsing",
                    &["body", "max_budget"],
                    "Input should be a valid number, unable to parse string as a number",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(validation(
                "float_type",
                &["body", "max_budget"],
                "Input should be a valid number",
            ));
            None
        }
    };
    let mut int = |name: &str| -> Option<Option<i64>> {
        match obj.get(name)? {
            Value::Null => Some(None),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Some(Some(i)),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Some(f as i64)),
                _ => {
                    errors.push(validation(
                        "int_from_float",
                        &["body", name],
                        "Input should be a valid integer, got a number with a fractional part",
                    ));
                    None
                }
            },
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(Some(i)),
                Err(_) => {
                    errors.push(validation(
                        "int_parsing",
                        &["body", name],
                        "Input should be a valid integer, unable to parse string as an integer",
                    ));
                    None
                }
            },
            _ => {
                errors.push(validation(
                    "int_type",
                    &["body", name],
                    "Input should be a valid integer",
                ));
                None
            }
        }
    };
    let tpm_limit = int("tpm_limit");
    let rpm_limit = int("rpm_limit");
    let max_parallel_requests = int("max_parallel_requests");
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            errors.push(validation(
                "dict_type",
                &["body", "metadata"],
                "Input should be a valid dictionary",
            ));
            None
        }
    };
    let key_type = match key_type_raw.flatten() {
        None => None,
        Some(t) if ["llm_api", "management", "read_only", "default"].contains(&t.as_str()) => {
            Some(t)
        }
        Some(_) => {
            errors.push(validation(
                "enum",
                &["body", "key_type"],
                "Input should be 'llm_api', 'management', 'read_only' or 'default'",
            ));
            None
        }
    };
    let blocked = match obj.get("blocked") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Bool(b)) => Some(Some(*b)),
        Some(_) => {
            errors.push(validation(
                "bool_type",
                &["body", "blocked"],
                "Input should be a valid boolean",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        ));
    }
    Ok(KeyFields {
        key_alias,
        duration,
        models,
        max_budget,
        budget_duration,
        tpm_limit,
        rpm_limit,
        max_parallel_requests,
        team_id,
        user_id,
        metadata,
        key_type,
        key,
        blocked,
    })
}

/// Checks shared by generate and update that LiteLLM answers with 400.
fn check_budgets(f: &KeyFields) -> Result<(), Reply> {
    if let Some(Some(b)) = f.max_budget
        && (!b.is_finite() || b < 0.0)
    {
        return Err(dict_error(
            StatusCode::BAD_REQUEST,
            &format!("max_budget must be a non-negative finite number. Received: {b:?}"),
        ));
    }
    if let Some(Some(bd)) = &f.budget_duration
        && duration_seconds(bd, SystemTime::now()).is_err()
    {
        return Err(dict_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid budget_duration {}. Use a format like '1h', '24h', '7d', or '30d'.",
                py_repr(bd)
            ),
        ));
    }
    Ok(())
}

fn duplicate_alias(alias: &str) -> Reply {
    (
        StatusCode::BAD_REQUEST,
        litellm_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Key with alias '{alias}' already exists. Unique key aliases across all keys are required."
            ),
            "bad_request_error",
            json!("key_alias"),
        ),
    )
}

fn generate(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let f = match parse_fields(obj) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    if obj.get("tags").is_some_and(|t| !t.is_null()) {
        return (
            StatusCode::FORBIDDEN,
            litellm_error(
                StatusCode::FORBIDDEN,
                "{'error': 'This feature is only available for LiteLLM Enterprise users: tags. You must be a LiteLLM Enterprise user to use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. \\nPricing: https://www.litellm.ai/#pricing'}",
                "internal_server_error",
                Value::Null,
            ),
        );
    }
    if obj
        .get("model_max_budget")
        .is_some_and(|m| m.as_object().is_some_and(|m| !m.is_empty()))
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            litellm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Invalid model_max_budget: You must have an enterprise license to set model_max_budget. You must be a LiteLLM Enterprise user to use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. \nPricing: https://www.litellm.ai/#pricing. Example of valid model_max_budget: https://docs.litellm.ai/docs/proxy/users",
                "internal_server_error",
                Value::Null,
            ),
        );
    }
    if let Err(reply) = check_budgets(&f) {
        return reply;
    }
    if f.key.is_some() && shared.custom_keys_disabled.load(Ordering::Relaxed) {
        return dict_error(
            StatusCode::FORBIDDEN,
            "Custom API key values are disabled by your administrator. Keys must be auto-generated.",
        );
    }
    if let Some(key) = &f.key
        && !key.starts_with("sk-")
    {
        let chars: Vec<char> = key.chars().collect();
        let masked = if chars.len() > 8 {
            let head: String = chars.iter().take(4).collect();
            let tail: String = chars.iter().skip(chars.len() - 4).collect();
            format!("{head}****{tail}")
        } else {
            "****".to_owned()
        };
        return dict_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: {masked}"
            ),
        );
    }
    if f.key.as_ref().is_some_and(|k| k.chars().count() < 16) {
        return dict_error(
            StatusCode::BAD_REQUEST,
            "Invalid key format. LiteLLM Virtual Key must be at least 16 characters long.",
        );
    }
    // `expires` is computed from the exact time; the stored row keeps milliseconds.
    let expires_exact = match f.duration.clone().flatten() {
        None => None,
        Some(d) => match duration_seconds(&d, now) {
            Ok(secs) => Some(now + Duration::from_secs(secs)),
            Err(message) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    litellm_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &message,
                        "internal_server_error",
                        Value::Null,
                    ),
                );
            }
        },
    };
    let key = f.key.clone().unwrap_or_else(new_key);
    let token = sha256_hex(&key);
    let key_alias = f.key_alias.clone().flatten();
    let key_type = f.key_type.clone().unwrap_or_else(|| "default".to_owned());
    let stored_now = to_millis(now);

    let record = {
        let mut db = shared.db();
        if let Some(alias) = &key_alias
            && db.alias_taken(alias, None)
        {
            return duplicate_alias(alias);
        }
        db.seq += 1;
        let record = KeyRecord {
            token: token.clone(),
            key_name: key_name(&key),
            key_alias: key_alias.clone(),
            models: f.models.clone().unwrap_or_default(),
            max_budget: f.max_budget.flatten(),
            budget_duration: f.budget_duration.clone().flatten(),
            tpm_limit: f.tpm_limit.flatten(),
            rpm_limit: f.rpm_limit.flatten(),
            max_parallel_requests: f.max_parallel_requests.flatten(),
            team_id: f.team_id.clone().flatten(),
            user_id: f.user_id.clone().flatten(),
            metadata: f.metadata.clone().unwrap_or_default(),
            key_type,
            expires: expires_exact.map(to_millis),
            blocked: f.blocked.flatten(),
            spend: 0.0,
            created_at: stored_now,
            updated_at: stored_now,
            deleted_at: None,
            seq: db.seq,
        };
        // The real proxy upserts with an empty update: the same secret again leaves the
        // existing row as it was, yet answers 200 with the request echoed.
        if !db.live.contains_key(&token) {
            db.insert(record.clone());
        }
        record
    };

    let mut out = row_json(&record, TimeStyle::Z);
    out.insert("key".into(), json!(key));
    out.insert("token".into(), json!(token));
    out.insert("token_id".into(), json!(token));
    out.insert("duration".into(), Value::Null);
    out.insert("expires".into(), json!(expires_exact.map(fmt_z)));
    out.insert("created_by".into(), json!("default_user_id"));
    out.insert("updated_by".into(), json!("default_user_id"));
    out.insert("litellm_budget_table".into(), Value::Null);
    out.insert("budget_id".into(), Value::Null);
    (StatusCode::OK, Value::Object(out))
}

// === /key/update ===

fn update(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let f = match parse_fields(obj) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let lookup_alias = if f.key.is_none() {
        f.key_alias.clone().flatten()
    } else {
        None
    };
    if f.key.is_none() && lookup_alias.is_none() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [validation("value_error", &["body"], "Value error, either key or key_alias must be provided")]}),
        );
    }
    if let Err(reply) = check_budgets(&f) {
        return reply;
    }
    // `""` leaves the expiry alone, `null`/`"-1"` removes it, anything else is recomputed.
    let new_expires: Option<Option<SystemTime>> = match &f.duration {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) if d.is_empty() => None,
        Some(Some(d)) if d == "-1" => Some(None),
        Some(Some(d)) => match duration_seconds(d, now) {
            Ok(secs) => Some(Some(to_millis(now + Duration::from_secs(secs)))),
            Err(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"message": format!("Authentication Error, {message}"), "type": "auth_error", "param": "None", "code": "400"}}),
                );
            }
        },
    };

    let mut db = shared.db();
    let token = match (&f.key, &lookup_alias) {
        (Some(key), _) => {
            let token = if key.starts_with("sk-") {
                sha256_hex(key)
            } else {
                key.clone()
            };
            if !db.live.contains_key(&token) {
                return not_found("Key not found.", "key");
            }
            token
        }
        (None, Some(alias)) => match db.by_alias(alias) {
            Some(k) => k.token.clone(),
            None => {
                return not_found(
                    &format!("Key not found. No key with key_alias='{alias}'."),
                    "key_alias",
                );
            }
        },
        (None, None) => return not_found("Key not found.", "key"),
    };
    // With `key` given, `key_alias` is a rename and must stay unique.
    if f.key.is_some()
        && let Some(Some(alias)) = &f.key_alias
        && db.alias_taken(alias, Some(&token))
    {
        return duplicate_alias(alias);
    }
    if f.key.is_some()
        && let Some(alias) = &f.key_alias
    {
        db.set_alias(&token, alias.clone());
    }
    let Some(record) = db.live.get_mut(&token) else {
        return not_found("Key not found.", "key");
    };
    if let Some(expires) = new_expires {
        record.expires = expires;
    }
    if let Some(models) = &f.models {
        record.models = models.clone();
    }
    if let Some(v) = f.max_budget {
        record.max_budget = v;
    }
    if let Some(v) = &f.budget_duration {
        record.budget_duration = v.clone();
    }
    if let Some(v) = f.tpm_limit {
        record.tpm_limit = v;
    }
    if let Some(v) = f.rpm_limit {
        record.rpm_limit = v;
    }
    if let Some(v) = f.max_parallel_requests {
        record.max_parallel_requests = v;
    }
    if let Some(v) = &f.team_id {
        record.team_id = v.clone();
    }
    if let Some(v) = &f.user_id {
        record.user_id = v.clone();
    }
    // Replaces the whole dict, as LiteLLM does: callers must re-send all metadata.
    if let Some(m) = &f.metadata {
        record.metadata = m.clone();
    }
    if let Some(t) = &f.key_type {
        record.key_type = t.clone();
    }
    if let Some(b) = f.blocked {
        record.blocked = b;
    }
    record.updated_at = to_millis(now);
    let mut out = row_json(record, TimeStyle::Offset);
    out.insert(
        "key".into(),
        json!(f.key.clone().unwrap_or_else(|| token.clone())),
    );
    out.insert("token".into(), json!(token));
    (StatusCode::OK, Value::Object(out))
}

// === /key/delete ===

fn delete(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let mut errors = Vec::new();
    let mut list = |name: &str| -> Option<Vec<String>> {
        match obj.get(name)? {
            Value::Null => None,
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => {
                errors.push(validation(
                    "list_type",
                    &["body", name],
                    "Input should be a valid list",
                ));
                None
            }
        }
    };
    let keys = list("keys");
    let aliases = list("key_aliases");
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        );
    }
    let non_empty = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
    if !non_empty(&keys) && !non_empty(&aliases) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [validation("value_error", &["body"], "Value error, At least one of 'keys' or 'key_aliases' must be provided.")]}),
        );
    }
    let deleted_at = to_millis(now);
    let mut db = shared.db();
    // When `keys` is present (even empty) LiteLLM ignores `key_aliases`.
    let (echo, tokens): (Vec<String>, Vec<String>) = match keys {
        Some(keys) => {
            let tokens = keys
                .iter()
                .map(|k| {
                    if k.starts_with("sk-") {
                        sha256_hex(k)
                    } else {
                        k.clone()
                    }
                })
                .collect();
            (keys, tokens)
        }
        None => {
            let aliases = aliases.unwrap_or_default();
            let tokens = aliases
                .iter()
                .filter_map(|a| db.by_alias.get(a))
                .flatten()
                .cloned()
                .collect();
            (aliases, tokens)
        }
    };
    let mut removed = 0;
    for token in tokens {
        if let Some(mut record) = db.remove(&token) {
            record.deleted_at = Some(deleted_at);
            record.updated_at = deleted_at;
            db.deleted.insert(token, record);
            removed += 1;
        }
    }
    if removed == 0 {
        return dict_error(StatusCode::NOT_FOUND, "No keys found");
    }
    (StatusCode::OK, json!({ "deleted_keys": echo }))
}

// === /key/block, /key/unblock ===

fn block(shared: &Shared, obj: &Map<String, Value>, blocked: bool, now: SystemTime) -> Reply {
    let key = match obj.get("key") {
        Some(Value::String(k)) => k.clone(),
        None => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": [validation("missing", &["body", "key"], "Field required")]}),
            );
        }
        Some(_) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": [validation("string_type", &["body", "key"], "Input should be a valid string")]}),
            );
        }
    };
    if !is_valid_api_key(&key) {
        return (
            StatusCode::BAD_REQUEST,
            litellm_error(
                StatusCode::BAD_REQUEST,
                "Invalid key format.",
                "bad_request_error",
                json!("key"),
            ),
        );
    }
    let token = if key.starts_with("sk-") {
        sha256_hex(&key)
    } else {
        key
    };
    let mut db = shared.db();
    let Some(record) = db.live.get_mut(&token) else {
        return not_found("Key not found.", "key");
    };
    record.blocked = Some(blocked);
    record.updated_at = to_millis(now);
    let mut out = row_json(record, TimeStyle::Z);
    out.insert("token".into(), json!(token));
    (StatusCode::OK, Value::Object(out))
}

// === /key/info ===

fn info(
    shared: &Shared,
    caller: &Caller,
    query: &HashMap<String, String>,
    now: SystemTime,
) -> Reply {
    let asked = query.get("key").filter(|k| !k.is_empty()).cloned();
    let (echo, token) = match (&asked, caller) {
        (Some(k), _) => (
            k.clone(),
            if k.starts_with("sk-") {
                sha256_hex(k)
            } else {
                k.clone()
            },
        ),
        (None, Caller::Virtual(own)) => (own.token.clone(), own.token.clone()),
        (None, Caller::Master) => return not_found("Key not found in database", "key"),
    };
    if let Caller::Virtual(own) = caller
        && own.token != token
        && !shared.is_admin_key(own)
    {
        return (
            StatusCode::FORBIDDEN,
            litellm_error(
                StatusCode::FORBIDDEN,
                "You are not allowed to access this key's info. Your role=unknown",
                "auth_error",
                Value::Null,
            ),
        );
    }
    let db = shared.db();
    let (record, status) = if let Some(k) = db.live.get(&token) {
        (k, live_status(k, now))
    } else if let Some(k) = db.deleted.get(&token) {
        (k, "deleted")
    } else {
        return not_found("Key not found in database", "key");
    };
    let mut out = row_json(record, TimeStyle::Offset);
    if let Some(deleted_at) = record.deleted_at {
        out.insert("deleted_at".into(), json!(fmt_offset(deleted_at)));
        out.insert("deleted_by".into(), json!("default_user_id"));
        out.insert(
            "deleted_by_api_key".into(),
            json!("litellm_proxy_master_key"),
        );
        out.insert("blocked".into(), json!(record.blocked.unwrap_or(false)));
    }
    out.insert("status".into(), json!(status));
    (StatusCode::OK, json!({"key": echo, "info": out}))
}

fn live_status(k: &KeyRecord, now: SystemTime) -> &'static str {
    if k.blocked == Some(true) {
        "revoked"
    } else if k.expires.is_some_and(|e| e < now) {
        "expired"
    } else {
        "active"
    }
}

// === /key/list ===

fn list(shared: &Shared, query: &HashMap<String, String>, now: SystemTime) -> Reply {
    let mut errors = Vec::new();
    let mut int_param = |name: &str, default: u64, min: u64, max: Option<u64>| -> u64 {
        let Some(raw) = query.get(name) else {
            return default;
        };
        match raw.trim().parse::<u64>() {
            Ok(v) if v < min => {
                errors.push(validation(
                    "greater_than_equal",
                    &["query", name],
                    &format!("Input should be greater than or equal to {min}"),
                ));
                default
            }
            Ok(v) if max.is_some_and(|m| v > m) => {
                errors.push(validation(
                    "less_than_equal",
                    &["query", name],
                    &format!(
                        "Input should be less than or equal to {}",
                        max.unwrap_or_default()
                    ),
                ));
                default
            }
            Ok(v) => v,
            Err(_) => {
                errors.push(validation(
                    "int_parsing",
                    &["query", name],
                    "Input should be a valid integer, unable to parse string as an integer",
                ));
                default
            }
        }
    };
    let page = int_param("page", 1, 1, None);
    let size = int_param("size", 10, 1, Some(100));
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        );
    }
    let flag = |name: &str| {
        query
            .get(name)
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"))
    };
    let full = flag("return_full_object");
    let substring = flag("substring_matching");
    let filter = |name: &str| query.get(name).filter(|v| !v.is_empty());

    let db = shared.db();
    let status_filter = filter("status").map(String::as_str);
    let source: Vec<&KeyRecord> = if status_filter == Some("deleted") {
        db.deleted.values().collect()
    } else {
        db.live.values().collect()
    };
    let mut matched: Vec<&KeyRecord> = source
        .into_iter()
        .filter(|k| match filter("key_alias") {
            None => true,
            Some(want) => k.key_alias.as_ref().is_some_and(|a| {
                if substring {
                    a.to_lowercase().contains(&want.to_lowercase())
                } else {
                    a == want
                }
            }),
        })
        .filter(|k| filter("key_hash").is_none_or(|h| &k.token == h))
        .filter(|k| filter("user_id").is_none_or(|u| k.user_id.as_ref() == Some(u)))
        .filter(|k| filter("team_id").is_none_or(|t| k.team_id.as_ref() == Some(t)))
        .filter(|k| match status_filter {
            None | Some("deleted") => true,
            Some(s) => live_status(k, now) == s,
        })
        .filter(|k| match filter("expires").map(String::as_str) {
            Some("expired") => k.expires.is_some_and(|e| e < now),
            Some("active") => k.expires.is_none_or(|e| e >= now),
            _ => true,
        })
        .collect();
    // Newest first, like LiteLLM's default sort; `sort_order=asc` (with `sort_by=created_at`,
    // the only column the plugin sorts by) gives oldest first.
    if filter("sort_order").is_some_and(|o| o.eq_ignore_ascii_case("asc")) {
        matched.sort_by_key(|k| k.seq);
    } else {
        matched.sort_by_key(|k| std::cmp::Reverse(k.seq));
    }
    let total = matched.len() as u64;
    let total_pages = total.div_ceil(size);
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let keys: Vec<Value> = matched
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(100))
        .map(|k| {
            if full {
                let mut row = row_json(k, TimeStyle::Z);
                row.insert("token".into(), json!(k.token));
                Value::Object(row)
            } else {
                json!(k.token)
            }
        })
        .collect();
    (
        StatusCode::OK,
        json!({"keys": keys, "total_count": total, "current_page": page, "total_pages": total_pages}),
    )
}

// === /v1/models ===

fn models(caller: &Caller) -> Reply {
    let allowed: Vec<&str> = match caller {
        Caller::Virtual(k) if !k.models.is_empty() => FAKE_MODELS
            .iter()
            .copied()
            .filter(|m| k.models.iter().any(|a| a == m))
            .collect(),
        _ => FAKE_MODELS.to_vec(),
    };
    let data: Vec<Value> = allowed
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "openai"}))
        .collect();
    (StatusCode::OK, json!({"data": data, "object": "list"}))
}

// === helpers: JSON shapes ===

/// Parses a JSON-object body the way FastAPI + LiteLLM answer malformed ones.
fn with_object(body: &Bytes, f: impl FnOnce(&Map<String, Value>) -> Reply) -> Reply {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [validation("missing", &["body"], "Field required")]}),
        );
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => f(&obj),
        // LiteLLM's handlers crash on non-object JSON before validating it.
        Ok(_) => (StatusCode::INTERNAL_SERVER_ERROR, unhandled_exception()),
        Err(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]}),
        ),
    }
}

fn validation(kind: &str, loc: &[&str], msg: &str) -> Value {
    json!({"type": kind, "loc": loc, "msg": msg})
}

fn litellm_error(status: StatusCode, message: &str, kind: &str, param: Value) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": status.as_u16().to_string()}})
}

/// LiteLLM's `HTTPException(detail={"error": msg})`: the message is the dict's Python repr.
fn dict_error(status: StatusCode, message: &str) -> Reply {
    (
        status,
        litellm_error(
            status,
            &format!("{{'error': {}}}", py_repr(message)),
            "internal_server_error",
            Value::Null,
        ),
    )
}

fn not_found(message: &str, param: &str) -> Reply {
    (
        StatusCode::NOT_FOUND,
        litellm_error(
            StatusCode::NOT_FOUND,
            message,
            "not_found_error",
            json!(param),
        ),
    )
}

/// Python's `repr()` of a str: single quotes unless the text contains one.
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

#[derive(Clone, Copy)]
enum TimeStyle {
    /// `…000Z` (generate, list, block)
    Z,
    /// `…000+00:00` (info, update)
    Offset,
}

/// The stored row as LiteLLM serializes it (without `token`/`key`, which callers add).
fn row_json(k: &KeyRecord, style: TimeStyle) -> Map<String, Value> {
    let t = |ts: SystemTime| match style {
        TimeStyle::Z => fmt_z(ts),
        TimeStyle::Offset => fmt_offset(ts),
    };
    let value = json!({
        "key_name": k.key_name,
        "key_alias": k.key_alias,
        "spend": k.spend,
        "max_budget": k.max_budget,
        "expires": k.expires.map(t),
        "models": k.models,
        "aliases": {},
        "config": {},
        "user_id": k.user_id,
        "team_id": k.team_id,
        "max_parallel_requests": k.max_parallel_requests,
        "metadata": k.metadata,
        "tpm_limit": k.tpm_limit,
        "rpm_limit": k.rpm_limit,
        "budget_duration": k.budget_duration,
        "allowed_cache_controls": [],
        "allowed_routes": if k.key_type == "llm_api" { json!(["llm_api_routes"]) } else if k.key_type == "management" { json!(["management_routes"]) } else { json!([]) },
        "key_type": k.key_type,
        "permissions": {},
        "blocked": k.blocked,
        "created_at": t(k.created_at),
        "created_by": "default_user_id",
        "updated_at": t(k.updated_at),
        "updated_by": "default_user_id",
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    raw_response(status, "application/json", value.to_string())
}

fn raw_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

// === helpers: keys, durations, time ===

/// `sk-` + 22 URL-safe characters (16 random bytes), like `secrets.token_urlsafe(16)`.
fn new_key() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = *uuid::Uuid::new_v4().as_bytes();
    }
    format!("sk-{}", base64url(&bytes))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

fn key_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

fn sha256_hex(s: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// LiteLLM's `is_valid_api_key`: an `sk-` key or a 64-hex hash, 3–100 characters.
fn is_valid_api_key(key: &str) -> bool {
    if !(3..=100).contains(&key.len()) {
        return false;
    }
    let sk = key.strip_prefix("sk-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let hash = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    sk || hash
}

/// LiteLLM's `duration_in_seconds`: `re.match(r"(\d+)(mo|[smhdw]?)")`, anchored at the start
/// only (so `1h30m` is one hour), plus the word aliases. Errors carry LiteLLM's messages.
fn duration_seconds(raw: &str, now: SystemTime) -> Result<u64, String> {
    let normalized = match raw.trim().to_lowercase().as_str() {
        "hourly" => "1h".to_owned(),
        "daily" => "24h".to_owned(),
        "weekly" => "7d".to_owned(),
        "monthly" => "30d".to_owned(),
        _ => raw.to_owned(),
    };
    let digits: String = normalized
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return Err("Invalid duration format".to_owned());
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| "Invalid duration format".to_owned())?;
    let rest = &normalized[digits.len()..];
    let unit = if rest.starts_with("mo") {
        "mo"
    } else {
        rest.get(..1).filter(|u| "smhdw".contains(*u)).unwrap_or("")
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "mo" => return Ok(months_in_seconds(now, value)),
        _ => return Err(format!("Unsupported duration unit, passed duration: {raw}")),
    };
    Ok(value.saturating_mul(mult))
}

/// Seconds from `now` to the same day-of-month `months` later (clamped to the month's end).
fn months_in_seconds(now: SystemTime, months: u64) -> u64 {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    let total = i64::from(m) - 1 + i64::try_from(months).unwrap_or(0);
    let (ny, nm) = (
        y + total.div_euclid(12),
        u32::try_from(total.rem_euclid(12)).unwrap_or(0) + 1,
    );
    let nd = d.min(days_in_month(ny, nm));
    let new_days = days_from_civil(ny, nm, nd);
    u64::try_from(new_days - days).unwrap_or(0) * 86_400
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Truncates to whole milliseconds, LiteLLM's database precision.
fn to_millis(t: SystemTime) -> SystemTime {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `2026-11-22T08:07:03.891396Z`, or `2026-11-22T08:07:03Z` on a whole second: Python's
/// `isoformat()` leaves a zero fraction out, which database times (whole milliseconds) hit
/// once in a thousand.
fn fmt_z(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t)
        .to_string()
        .replace(".000000Z", "Z")
}

/// `2026-11-22T08:07:03.891000+00:00`
fn fmt_offset(t: SystemTime) -> String {
    let z = fmt_z(t);
    format!("{}+00:00", z.trim_end_matches('Z'))
}

/// Python's `str(datetime)`: `2026-11-22 08:06:51.043000+00:00`
fn py_datetime(t: SystemTime) -> String {
    fmt_offset(t).replacen('T', " ", 1)
}
