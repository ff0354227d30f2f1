//! The state one mount shares between its requests: the LiteLLM client and the roles, each
//! cached until storage says it changed. A leaf: the path modules use it, it uses only what they
//! store (the config and role entities) and the client.

use std::sync::Arc;

use crate::engine::client::Client;
use crate::engine::path_config::{self, Config};
use crate::engine::path_roles::{self, Role};
use crate::framework::cache::StorageCache;
use crate::framework::{self, Storage};

/// State shared by all requests of one mount.
#[derive(Default)]
pub struct MountState {
    /// The LiteLLM client built from the stored config (one connection pool per mount).
    client: StorageCache<Client>,
    /// Roles by storage key.
    roles: StorageCache<Arc<Role>>,
}

impl MountState {
    /// The client for the configured LiteLLM, or a clear error when the mount is unconfigured.
    pub async fn client(&self, storage: &Storage) -> framework::Result<Client> {
        let client = self
            .client
            .get_or_load(path_config::STORAGE_KEY, || async {
                let Some(config) = Config::load(storage).await? else {
                    return Ok(None);
                };
                Client::new(&config.client_config()).map(Some).map_err(|e| {
                    framework::Error::Internal(format!("stored config is unusable: {e}"))
                })
            })
            .await?;
        client.ok_or_else(|| {
            framework::Error::bad_request(
                "the LiteLLM connection is not configured: write to config first",
            )
        })
    }

    /// Role `name`, `None` when it does not exist.
    pub async fn role(
        &self,
        storage: &Storage,
        name: &str,
    ) -> framework::Result<Option<Arc<Role>>> {
        self.roles
            .get_or_load(&path_roles::storage_key(name), || async {
                Ok(Role::load(storage, name).await?.map(Arc::new))
            })
            .await
    }

    /// Drops cached state derived from storage `key`.
    pub fn invalidate(&self, key: &str) {
        if key == path_config::STORAGE_KEY {
            self.client.invalidate(key);
        } else if key.starts_with(path_roles::STORAGE_PREFIX) {
            self.roles.invalidate(key);
        }
    }
}
