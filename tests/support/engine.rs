//! The engine in-process: one mount with in-memory storage, fixed lease limits and the fake
//! LiteLLM, driven with the same requests the host sends. Fast and precise, for fault
//! injection, caches, tidy and identity templates. Test files add their own helpers with
//! extension traits.

use serde_json::{Map, Value, json};
use vault_plugin_secrets_litellm::engine::key_index;
use vault_plugin_secrets_litellm::engine::{MountState, factory};
use vault_plugin_secrets_litellm::framework::system_view::FixedSystemView;
use vault_plugin_secrets_litellm::framework::{
    self, Backend, LeaseSecret, RawRequest, Response, Storage, SystemView, wal,
};

use super::fake_litellm::FakeLiteLlm;

/// The master key of the engine's fake LiteLLM.
pub const MASTER_KEY: &str = "sk-engine-test-master-key-0123456789";

/// Where the engine is mounted.
pub const MOUNT: &str = "litellm/";

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
        let litellm = FakeLiteLlm::start(MASTER_KEY).await.unwrap();
        let engine = Engine {
            backend: factory(),
            storage: Storage::memory(),
            system: SystemView::new(system),
            litellm,
        };
        let config = json!({"base_url": engine.litellm.url(), "master_key": MASTER_KEY, "request_timeout": "1s"});
        engine.call("update", "config", config).await.unwrap();
        engine
            .call(
                "update",
                "roles/dev",
                json!({"models": "fake-gpt", "ttl": "5m", "max_ttl": "1h"}),
            )
            .await
            .unwrap();
        engine
    }

    /// The data of a successful response (panics on an error or a response without data).
    pub async fn data(&self, operation: &str, path: &str, body: Value) -> Value {
        self.call(operation, path, body)
            .await
            .unwrap()
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
        let Value::Object(data) = data else {
            panic!("object expected")
        };
        let raw = RawRequest {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_string(),
            path: path.to_string(),
            data,
            mount_point: MOUNT.to_string(),
            display_name: "token".to_string(),
            entity_id: entity_id.to_string(),
            ..RawRequest::default()
        };
        self.backend
            .handle_request(raw, self.storage.clone(), self.system.clone())
            .await
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
        wal::list(&self.storage).await.unwrap()
    }

    /// The hashes in the key index.
    pub async fn index_entries(&self) -> Vec<String> {
        key_index::list(&self.storage).await.unwrap()
    }

    pub async fn rollback_now(&self) {
        let mut data = Map::new();
        data.insert("immediate".into(), Value::Bool(true));
        let raw = RawRequest {
            operation: "rollback".into(),
            data,
            ..RawRequest::default()
        };
        self.backend
            .handle_request(raw, self.storage.clone(), self.system.clone())
            .await
            .unwrap();
    }
}
