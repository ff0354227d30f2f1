//! The state one mount shares between its requests: the LiteLLM client and the roles, each
//! cached until storage says it changed. A leaf: the path modules use it, it uses only what they
//! store (the config and role entities) and the client.

use std::sync::Arc;

use crate::engine::client::Client;
use crate::engine::error::{Error, Result};
use crate::engine::layout;
use crate::engine::path_config::Config;
use crate::engine::path_roles::Role;
use crate::framework::Storage;
use crate::framework::cache::StorageCache;

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
    pub async fn client(&self, storage: &Storage) -> Result<Client> {
        let client = self
            .client
            .get_or_load(layout::CONFIG, || async {
                let Some(config) = Config::load(storage).await? else {
                    return Ok(None);
                };
                Client::new(&config.client_config())
                    .map(Some)
                    .map_err(Error::StoredConfigUnusable)
            })
            .await?;
        client.ok_or(Error::NotConfigured)
    }

    /// Role `name`, `None` when it does not exist.
    pub async fn role(&self, storage: &Storage, name: &str) -> Result<Option<Arc<Role>>> {
        self.roles
            .get_or_load(&layout::role(name), || async {
                Ok(Role::load(storage, name).await?.map(Arc::new))
            })
            .await
    }

    /// Drops cached state derived from storage `key`.
    pub fn invalidate(&self, key: &str) {
        if key == layout::CONFIG {
            self.client.invalidate(key);
        } else if key.starts_with(layout::ROLES) {
            self.roles.invalidate(key);
        }
    }
}
