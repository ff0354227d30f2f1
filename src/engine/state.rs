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
use crate::engine::path_static_roles::StaticRole;
use crate::engine::static_rotation::StaticKeys;
use crate::engine::static_schedule::Queue;
use crate::framework::Storage;
use crate::framework::cache::StorageCache;

/// State shared by all requests of one mount.
pub struct MountState {
    /// The LiteLLM client built from the stored config (one connection pool per mount).
    client: StorageCache<Client>,
    /// Roles by storage key.
    roles: StorageCache<Arc<Role>>,
    /// `(team, user)` pairs known to be members, so a user's keys after the first cost no
    /// `/team/member_add`. Membership never ends while the team lives, so entries stay valid.
    members: Mutex<HashSet<(String, String)>>,
    /// Static roles by storage key.
    static_roles: StorageCache<Arc<StaticRole>>,
    /// Static roles' keys by storage key.
    static_keys: StorageCache<Arc<StaticKeys>>,
    /// When static roles next need their key rotated or their previous key deleted.
    pub rotations: Queue,
    /// One lock per static role (hashed), so a request and the schedule never rotate the same
    /// role at once.
    static_locks: [Arc<tokio::sync::Mutex<()>>; STATIC_LOCKS],
}

/// Locks shared by all static roles (as Vault's locksutil): enough that unrelated roles rarely
/// wait for each other.
const STATIC_LOCKS: usize = 64;

impl Default for MountState {
    fn default() -> MountState {
        MountState {
            client: StorageCache::default(),
            roles: StorageCache::default(),
            members: Mutex::default(),
            static_roles: StorageCache::default(),
            static_keys: StorageCache::default(),
            rotations: Queue::default(),
            static_locks: std::array::from_fn(|_| Arc::default()),
        }
    }
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

    /// Static role `name`, `None` when it does not exist.
    pub async fn static_role(
        &self,
        storage: &Storage,
        name: &str,
    ) -> Result<Option<Arc<StaticRole>>> {
        self.static_roles
            .get_or_load(&layout::static_role(name), || async {
                Ok(StaticRole::load(storage, name).await?.map(Arc::new))
            })
            .await
    }

    /// Static role `name`'s keys, `None` when it has none.
    pub async fn static_keys(
        &self,
        storage: &Storage,
        name: &str,
    ) -> Result<Option<Arc<StaticKeys>>> {
        self.static_keys
            .get_or_load(&layout::static_keys(name), || async {
                Ok(StaticKeys::load(storage, name).await?.map(Arc::new))
            })
            .await
    }

    /// The lock of static role `name`.
    pub fn static_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut hasher);
        let slot = usize::try_from(hasher.finish() % STATIC_LOCKS as u64).unwrap_or(0);
        self.static_locks[slot].clone()
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
        } else if key.starts_with(layout::STATIC_ROLES) {
            self.static_roles.invalidate(key);
            self.rotations.stale();
        } else if key.starts_with(layout::STATIC_KEYS) {
            self.static_keys.invalidate(key);
        }
    }
}
