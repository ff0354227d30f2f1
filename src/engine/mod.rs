//! The LiteLLM secrets engine: one module per path, as a Vault developer expects.
//!
//! - [`state`]: what one mount shares between requests (client and role caches).
//! - [`path_config`]: the connection to LiteLLM; [`path_rotate_root`]: replacing the admin key
//!   with one only Vault knows.
//! - [`path_roles`]: what a credential may do; [`key_owner`] and [`identity`]: whom a role's
//!   keys belong to, from the caller's Vault identity.
//! - [`key_settings`]: a role's further `/key/generate` fields and the checks a role write
//!   makes against LiteLLM; [`path_models`]: the proxy's model catalogue.
//! - [`path_creds`]: issuing a key; [`secret_key`]: its lease (renew, revoke, WAL rollback).
//! - [`key_index`]: the keys this mount issued and has not revoked.
//! - [`path_static_roles`]: one stable key per static role, read at [`path_static_creds`]
//!   without a lease, rotated by [`static_rotation`] on the [`static_schedule`] (timing:
//!   [`rotation_schedule`]) or at once by [`path_rotate_role`].
//! - [`path_tidy`]: `tidy` and `config/auto-tidy`, deleting keys no lease accounts for.
//! - [`layout`]: every storage key; [`schema`]: the version every entry carries.
//! - [`client`]: LiteLLM's key API.

pub(crate) mod alias;
pub mod client;
pub(crate) mod error;
pub(crate) mod identity;
pub mod key_index;
pub(crate) mod key_owner;
pub(crate) mod key_settings;
pub(crate) mod layout;
pub(crate) mod path_config;
pub(crate) mod path_creds;
pub(crate) mod path_models;
pub(crate) mod path_roles;
pub(crate) mod path_rotate_role;
pub(crate) mod path_rotate_root;
pub(crate) mod path_static_creds;
pub(crate) mod path_static_roles;
pub(crate) mod path_tidy;
pub(crate) mod path_usage;
pub(crate) mod role_team;
pub(crate) mod rotation_schedule;
pub(crate) mod schema;
pub(crate) mod secret_key;
pub(crate) mod stamps;
mod state;
pub(crate) mod static_rotation;
pub(crate) mod static_schedule;

use std::sync::Arc;

use crate::framework::{self, Backend};
pub use state::MountState;

const BACKEND_HELP: &str = "\
The LiteLLM secrets engine issues short-lived LiteLLM virtual keys under Vault leases.

Configure the connection to the LiteLLM proxy at `config`, define roles at `roles/<name>`, and
read `creds/<name>` to get a key. Static roles at `static-roles/<name>` hold one key each,
read from `static-creds/<name>` without a lease and rotated by Vault. Renewing a lease
extends the key's expiry in LiteLLM; revoking or expiring it deletes the key. When the
configured key is a virtual key of a LiteLLM admin, `rotate-root` replaces it with one that
only Vault knows.";

/// How old a WAL entry must be before rollback undoes it. `LITELLM_PLUGIN_WAL_MIN_AGE` (a
/// duration such as `30s`) overrides the framework's 10 minutes, e.g. for tests; it must stay
/// longer than the slowest issue, or rollback would delete keys of issues still in flight.
pub fn wal_rollback_min_age() -> std::time::Duration {
    std::env::var("LITELLM_PLUGIN_WAL_MIN_AGE")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(framework::wal::DEFAULT_ROLLBACK_MIN_AGE)
}

/// Undoes one WAL entry, by its kind: a key whose issue never reached its lease, a team whose
/// role was never stored, or a rotate-root successor that was never stored.
async fn rollback(
    state: Arc<MountState>,
    req: framework::Request,
    entry: framework::WalEntry,
) -> error::Result<()> {
    match entry.kind.as_str() {
        secret_key::WAL_KIND => secret_key::rollback(state, req, entry).await,
        role_team::WAL_KIND => {
            role_team::rollback(state.client(&req.storage).await, &req, &entry).await
        }
        path_rotate_root::SUCCESSOR_WAL_KIND => {
            path_rotate_root::rollback(&state, &req, &entry).await
        }
        static_rotation::WAL_KIND => static_schedule::rollback(state, req, entry).await,
        other => {
            tracing::warn!(kind = %other, "dropping WAL entry of unknown kind");
            Ok(())
        }
    }
}

/// Builds the engine for one mount.
pub fn factory() -> Backend<MountState> {
    let mut backend = Backend::new(Arc::new(MountState::default()), BACKEND_HELP);
    backend.paths.push(path_config::path());
    backend.paths.push(path_rotate_root::path());
    backend.paths.extend(path_roles::paths());
    backend.paths.push(path_creds::path());
    backend.paths.extend(path_tidy::paths());
    backend.paths.push(path_usage::path());
    backend.paths.extend(path_models::paths());
    backend.paths.extend(path_static_roles::paths());
    backend.paths.push(path_static_creds::path());
    backend.paths.push(path_rotate_role::path());
    backend.secrets.push(secret_key::secret_type());
    backend.wal_rollback = Some(framework::wal::rollback_fn(rollback));
    backend.wal_rollback_min_age = wal_rollback_min_age();
    backend.periodic = Some(framework::periodic_fn(path_tidy::periodic));
    backend.ticker = Some(framework::Ticker {
        every: static_schedule::TICK,
        run: framework::periodic_fn(static_schedule::tick),
    });
    backend.special_paths = layout::special_paths();
    backend.invalidate = Some(Arc::new(MountState::invalidate));
    backend
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bao path-help` prints these as they are: a line must fit a terminal.
    #[test]
    fn help_lines_fit_a_terminal() {
        const WIDTH: usize = 100;
        let backend = factory();
        let texts = std::iter::once(backend.help).chain(
            backend
                .paths
                .iter()
                .flat_map(|p| [p.synopsis, p.description]),
        );
        for text in texts {
            for line in text.lines() {
                assert!(
                    line.chars().count() <= WIDTH,
                    "a help line longer than {WIDTH} characters: {line:?}"
                );
            }
        }
    }
}
