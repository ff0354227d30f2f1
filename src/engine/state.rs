//! The state one mount shares between its requests: the LiteLLM client and the roles, each
//! cached until storage says it changed. A leaf: the path modules use it, it uses only what they
//! store (the config and role entities) and the client.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

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
    /// `(team, user)` pairs known to be members, so a user's keys after the first cost no
    /// `/team/member_add`. Membership never ends while the team lives, so entries stay valid.
    members: Mutex<HashSet<(String, String)>>,
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

    /// Makes `user_id` a member of team `team_id` unless this process knows it is one.
    pub async fn ensure_member(&self, client: &Client, team_id: &str, user_id: &str) -> Result<()> {
        let pair = (team_id.to_string(), user_id.to_string());
        if self.members_lock().contains(&pair) {
            return Ok(());
        }
        client.add_member(team_id, user_id).await.map_err(|e| {
            Error::litellm(
                format!("LiteLLM could not make user {user_id:?} a member of the role's team"),
                e,
            )
        })?;
        self.members_lock().insert(pair);
        Ok(())
    }

    fn members_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        // A panic while holding it cannot leave the set half-changed: use it as it is.
        self.members.lock().unwrap_or_else(|e| e.into_inner())
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
