//! The engine in-process: one mount with in-memory storage, fixed lease limits and the fake
//! LiteLLM, driven with the same requests the host sends. Fast and precise, for fault
//! injection, caches, tidy and identity templates. Test files add their own helpers with
//! extension traits.
//!
//! Time is the engine's manual clock, which [`Engine::advance`] moves together with the fake's:
//! tests that wait for an expiry or an interval move time instead of sleeping.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use vault_plugin_secrets_litellm::engine::key_index;
use vault_plugin_secrets_litellm::engine::{MountState, factory};
use vault_plugin_secrets_litellm::framework::storage::{StorageBackend, StorageFuture};
use vault_plugin_secrets_litellm::framework::system_view::FixedSystemView;
use vault_plugin_secrets_litellm::framework::{
    self, Backend, Clock, LeaseSecret, RawRequest, Response, Storage, StorageError, SystemView, wal,
};
use vault_plugin_secrets_litellm::proto::logical;

use super::fake_litellm::FakeLiteLlm;

/// Storage that reads through to another and refuses every write as an HA standby's does.
pub struct ReadOnlyStorage(pub Storage);

impl StorageBackend for ReadOnlyStorage {
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(self.0.get(key))
    }

    fn put<'a>(
        &'a self,
        _key: &'a str,
        _value: Vec<u8>,
        _seal_wrap: bool,
    ) -> StorageFuture<'a, ()> {
        Box::pin(async { Err(read_only()) })
    }

    fn delete<'a>(&'a self, _key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async { Err(read_only()) })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(self.0.list(prefix))
    }
}

/// OpenBao's error for a write on a standby (the host forwards requests that fail with it).
fn read_only() -> StorageError {
    StorageError("cannot write to readonly storage".into())
}

/// Another node of the same mount (or a restarted process): its own backend and caches, its own
/// storage view and system view, the same fake LiteLLM.
pub struct Node<'a> {
    engine: &'a Engine,
    backend: Backend<MountState>,
    storage: Storage,
    system: SystemView,
}

impl Node<'_> {
    /// A request with a token that has no identity entity.
    pub async fn call(
        &self,
        operation: &str,
        path: &str,
        data: Value,
    ) -> framework::Result<Option<Response>> {
        let raw = Engine::raw_request("", operation, path, data);
        self.backend
            .handle_request(raw, self.storage.clone(), self.system.clone())
            .await
    }

    /// The host's rollback tick, with `immediate` (every WAL entry is due).
    pub async fn rollback_now(&self) -> framework::Result<Option<Response>> {
        self.backend
            .handle_request(
                Engine::rollback_request(),
                self.storage.clone(),
                self.system.clone(),
            )
            .await
    }

    /// One tick of the mount's ticker (static rotations), on this node.
    pub async fn run_ticker(&self) {
        self.backend.tick(&self.storage, &self.system).await;
    }

    /// The engine this node is beside.
    pub fn beside(&self) -> &Engine {
        self.engine
    }
}

/// The master key of the engine's fake LiteLLM.
pub const MASTER_KEY: &str = "sk-engine-test-master-key-0123456789";

/// Where the engine is mounted.
pub const MOUNT: &str = "litellm/";

/// The mount's UUID, as the host sends it at `Setup`.
pub const BACKEND_UUID: &str = "6b1e5d0a-3c2f-4e8b-9a7d-0f1e2d3c4b5a";

/// One mount of the engine, in-process, with in-memory storage and the fake LiteLLM.
pub struct Engine {
    pub backend: Backend<MountState>,
    pub storage: Storage,
    pub system: SystemView,
    pub litellm: FakeLiteLlm,
}

impl Engine {
    /// A configured mount with role `dev` (fake-gpt, ttl 5m, max_ttl 1h).
    pub async fn start() -> Engine {
        Self::start_with(FixedSystemView::default()).await
    }

    /// The same, on a host with the given lease limits and identity entities.
    pub async fn start_with(system: FixedSystemView) -> Engine {
        let litellm = FakeLiteLlm::start(MASTER_KEY).expect("starting the fake LiteLLM");
        let engine = Engine::on(Storage::memory(), SystemView::new(system), litellm);
        let config = json!({"base_url": engine.litellm.url(), "master_key": MASTER_KEY, "request_timeout": "1s"});
        engine
            .call("update", "config", config)
            .await
            .expect("writing config");
        engine
            .call(
                "update",
                "roles/dev",
                json!({"models": "fake-gpt", "ttl": "5m", "max_ttl": "1h"}),
            )
            .await
            .expect("writing role dev");
        engine
    }

    /// A fresh engine (a new process, as far as the mount knows) on `storage`, with a manual
    /// clock set to now; the fake's clock is stopped at the same instant, so the two agree
    /// until [`Engine::advance`] moves both.
    pub fn on(storage: Storage, system: SystemView, litellm: FakeLiteLlm) -> Engine {
        let start = SystemTime::now();
        let mut backend = factory();
        backend.setup(BACKEND_UUID);
        backend.clock = Clock::manual(start);
        litellm.freeze_clock(start);
        Engine {
            backend,
            storage,
            system,
            litellm,
        }
    }

    /// One tick of the mount's ticker (static rotations), as the running plugin does every few
    /// seconds.
    pub async fn run_ticker(&self) {
        self.backend.tick(&self.storage, &self.system).await;
    }

    /// The engine's time.
    pub fn now(&self) -> SystemTime {
        self.backend.clock.now()
    }

    /// Moves time forward by `by` for the engine and for the fake LiteLLM.
    #[track_caller]
    pub fn advance(&self, by: Duration) {
        assert!(
            self.backend.clock.advance(by),
            "the engine's clock is manual"
        );
        self.litellm.advance_clock(by);
    }

    /// The data of a successful response (panics on an error or a response without data).
    pub async fn data(&self, operation: &str, path: &str, body: Value) -> Value {
        self.call(operation, path, body)
            .await
            .unwrap_or_else(|e| panic!("{operation} {path}: {e}"))
            .and_then(|r| r.data)
            .unwrap_or_else(|| panic!("{operation} {path} answers with data"))
    }

    /// A request with a token that has no identity entity (like root).
    pub async fn call(
        &self,
        operation: &str,
        path: &str,
        data: Value,
    ) -> framework::Result<Option<Response>> {
        self.call_as("", operation, path, data).await
    }

    /// A request with a token of identity entity `entity_id`.
    pub async fn call_as(
        &self,
        entity_id: &str,
        operation: &str,
        path: &str,
        data: Value,
    ) -> framework::Result<Option<Response>> {
        let raw = Engine::raw_request(entity_id, operation, path, data);
        self.backend
            .handle_request(raw, self.storage.clone(), self.system.clone())
            .await
    }

    /// Another node of this mount on `storage` and `system`, with the engine's time.
    pub fn node(&self, storage: Storage, system: SystemView) -> Node<'_> {
        let mut backend = factory();
        backend.setup(BACKEND_UUID);
        backend.clock = self.backend.clock.clone();
        Node {
            engine: self,
            backend,
            storage,
            system,
        }
    }

    fn raw_request(entity_id: &str, operation: &str, path: &str, data: Value) -> RawRequest {
        let Value::Object(data) = data else {
            panic!("object expected")
        };
        RawRequest {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_string(),
            path: path.to_string(),
            data,
            mount_point: MOUNT.to_string(),
            display_name: "token".to_string(),
            entity_id: entity_id.to_string(),
            ..RawRequest::default()
        }
    }

    fn rollback_request() -> RawRequest {
        let mut data = Map::new();
        data.insert("immediate".into(), Value::Bool(true));
        RawRequest {
            operation: "rollback".into(),
            data,
            mount_point: MOUNT.to_string(),
            ..RawRequest::default()
        }
    }

    pub async fn lease_call(
        &self,
        operation: &str,
        secret: &LeaseSecret,
    ) -> framework::Result<Option<Response>> {
        let raw = RawRequest {
            operation: operation.to_string(),
            path: "creds/dev".to_string(),
            secret: Some(secret.clone()),
            mount_point: MOUNT.to_string(),
            ..RawRequest::default()
        };
        self.backend
            .handle_request(raw, self.storage.clone(), self.system.clone())
            .await
    }

    pub async fn issue(&self) -> framework::Result<LeaseSecret> {
        let response = self
            .call("read", "creds/dev", json!({}))
            .await?
            .expect("a response");
        Ok(response.secret.expect("a lease"))
    }

    pub async fn wal_ids(&self) -> Vec<String> {
        wal::list(&self.storage).await.expect("listing the WAL")
    }

    /// The hashes in the key index.
    pub async fn index_entries(&self) -> Vec<String> {
        key_index::list(&self.storage)
            .await
            .expect("listing the key index")
    }

    pub async fn rollback_now(&self) {
        self.backend
            .handle_request(
                Engine::rollback_request(),
                self.storage.clone(),
                self.system.clone(),
            )
            .await
            .expect("an immediate rollback");
    }
}

/// An identity entity the host knows: `alice`, with metadata and a userpass alias.
pub const ALICE: &str = "7d1b3c56-0000-4000-8000-00000000a11c";
/// An entity the host knows that has no metadata and no aliases.
pub const BARE: &str = "7d1b3c56-0000-4000-8000-00000000ba4e";
/// The accessor of alice's userpass mount.
pub const USERPASS: &str = "auth_userpass_5e7f9a1b";

/// The identity entity `alice` (team `research`, alias `alice-login` on [`USERPASS`] with org
/// `lab`).
pub fn alice() -> logical::Entity {
    logical::Entity {
        id: ALICE.into(),
        name: "alice".into(),
        metadata: [("team".to_string(), "research".to_string())].into(),
        aliases: vec![logical::Alias {
            mount_type: "userpass".into(),
            mount_accessor: USERPASS.into(),
            name: "alice-login".into(),
            metadata: [("org".to_string(), "lab".to_string())].into(),
            ..logical::Alias::default()
        }],
        ..logical::Entity::default()
    }
}

/// A host that knows the entities `alice` and `bare`.
pub fn known_entities() -> FixedSystemView {
    let bare = logical::Entity {
        id: BARE.into(),
        name: "bare".into(),
        ..logical::Entity::default()
    };
    FixedSystemView {
        entities: BTreeMap::from([(ALICE.to_string(), alice()), (BARE.to_string(), bare)]),
        ..FixedSystemView::default()
    }
}
