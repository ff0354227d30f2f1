//! The LiteLLM secrets engine: its state, caches and path table.

use std::sync::Arc;

use crate::client::Client;
use crate::framework::cache::StorageCache;
use crate::framework::{self, Backend, SpecialPaths, Storage};
use crate::path_config::{self, Config};
use crate::path_roles::Role;
use crate::{key_index, path_creds, path_roles, path_rotate_root, path_tidy, secret_key};

const BACKEND_HELP: &str = "\
The LiteLLM secrets engine issues short-lived LiteLLM virtual keys under Vault leases.

Configure the connection to the LiteLLM proxy at `config`, define roles at `roles/<name>`, and
read `creds/<name>` to get a key. Renewing a lease extends the key's \
expiry in LiteLLM; revoking or expiring it deletes the key. When the configured key is a
virtual key of a LiteLLM admin, `rotate-root` replaces it with one that only Vault knows.";

/// State shared by all requests of one mount.
#[derive(Default)]
pub struct LiteLlm {
    /// The LiteLLM client built from the stored config (one connection pool per mount).
    client: StorageCache<Client>,
    /// Roles by storage key.
    roles: StorageCache<Arc<Role>>,
}

impl LiteLlm {
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

/// How old a WAL entry must be before rollback undoes it. `LITELLM_PLUGIN_WAL_MIN_AGE` (a
/// duration such as `30s`) overrides the framework's 10 minutes, e.g. for tests; it must stay
/// longer than the slowest issue, or rollback would delete keys of issues still in flight.
pub fn wal_rollback_min_age() -> std::time::Duration {
    std::env::var("LITELLM_PLUGIN_WAL_MIN_AGE")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(framework::wal::DEFAULT_ROLLBACK_MIN_AGE)
}

/// Builds the engine for one mount.
pub fn factory() -> Backend<LiteLlm> {
    let mut backend = Backend::new(Arc::new(LiteLlm::default()), BACKEND_HELP);
    backend.paths.push(path_config::path());
    backend.paths.push(path_rotate_root::path());
    backend.paths.extend(path_roles::paths());
    backend.paths.push(path_creds::path());
    backend.paths.extend(path_tidy::paths());
    backend.secrets.push(secret_key::secret_type());
    backend.wal_rollback = Some(framework::wal::rollback_fn(secret_key::rollback));
    backend.wal_rollback_min_age = wal_rollback_min_age();
    backend.periodic = Some(framework::periodic_fn(path_tidy::periodic));
    backend.special_paths = SpecialPaths {
        seal_wrap_storage: vec![path_config::STORAGE_KEY.to_string()],
        local_storage: vec![
            framework::wal::WAL_PREFIX.to_string(),
            key_index::PREFIX.to_string(),
            key_index::STATE_PREFIX.to_string(),
        ],
        ..SpecialPaths::default()
    };
    backend.invalidate = Some(Arc::new(LiteLlm::invalidate));
    backend
}
