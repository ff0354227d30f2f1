//! Where the engine keeps what it stores: every storage key of the mount, in one table.
//!
//! | key | holds | replication | seal-wrapped |
//! |---|---|---|---|
//! | `config` | LiteLLM URL, admin key, TLS settings, `last_rotated` | replicated | yes |
//! | `config/auto-tidy` | auto-tidy settings | replicated | no |
//! | `roles/<name>` | a role | replicated | no |
//! | `static-roles/<name>` | a static role's settings and schedule | replicated | no |
//! | `static-keys/<name>` | a static role's current key (the secret itself), its previous key until deleted, the last rotation | replicated | yes |
//! | `retired-teams/<team_id>` | a team no role uses, until tidy deletes it | replicated | no |
//! | `keys/<token_id>` | the key index: one entry per issued, unrevoked key | local | no |
//! | `tidy/index-since` | when this mount started indexing its keys | local | no |
//! | `tidy/last-auto-tidy` | when auto-tidy last ran | local | no |
//! | `tidy/last-tidy` | when tidy last started (its first write, before any LiteLLM call) | local | no |
//! | `wal/<uuid>` | write-ahead entries of issues and rotations in flight (the framework's; a static rotation's holds its successor's secret) | local | no |
//!
//! Local entries mirror the leases, which are local to each cluster too: what one cluster
//! issued, only that cluster indexes and rolls back.

use crate::framework::{SpecialPaths, wal};

/// The connection to LiteLLM.
pub const CONFIG: &str = "config";
/// Auto-tidy settings.
pub const AUTO_TIDY: &str = "config/auto-tidy";
/// Roles, one entry per name.
pub const ROLES: &str = "roles/";
/// Static roles, one entry per name.
pub const STATIC_ROLES: &str = "static-roles/";
/// Static roles' keys, one entry per static role name.
pub const STATIC_KEYS: &str = "static-keys/";
/// Teams of deleted roles (or roles that dropped their limits), one entry per team.
pub const RETIRED_TEAMS: &str = "retired-teams/";
/// The key index, one entry per key hash.
pub const KEY_INDEX: &str = "keys/";
/// Tidy's bookkeeping: [`INDEX_SINCE`] and [`LAST_AUTO_TIDY`].
pub const TIDY_STATE: &str = "tidy/";
/// When this mount started indexing its keys.
pub const INDEX_SINCE: &str = "tidy/index-since";
/// When auto-tidy last ran.
pub const LAST_AUTO_TIDY: &str = "tidy/last-auto-tidy";
/// When tidy last started.
pub const LAST_TIDY: &str = "tidy/last-tidy";

/// The storage key of role `name`.
pub fn role(name: &str) -> String {
    format!("{ROLES}{name}")
}

/// The storage key of static role `name`.
pub fn static_role(name: &str) -> String {
    format!("{STATIC_ROLES}{name}")
}

/// The storage key of static role `name`'s keys.
pub fn static_keys(name: &str) -> String {
    format!("{STATIC_KEYS}{name}")
}

/// The storage key of retired team `team_id`.
pub fn retired_team(team_id: &str) -> String {
    format!("{RETIRED_TEAMS}{team_id}")
}

/// The table above, as the host needs it.
pub fn special_paths() -> SpecialPaths {
    SpecialPaths {
        seal_wrap_storage: vec![CONFIG.to_string(), STATIC_KEYS.to_string()],
        local_storage: vec![
            wal::WAL_PREFIX.to_string(),
            KEY_INDEX.to_string(),
            TIDY_STATE.to_string(),
        ],
        ..SpecialPaths::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_bookkeeping_is_local_and_config_and_static_keys_are_seal_wrapped() {
        let special = special_paths();
        for key in [INDEX_SINCE, LAST_AUTO_TIDY, LAST_TIDY, "keys/ab", "wal/1"] {
            assert!(
                special
                    .local_storage
                    .iter()
                    .any(|p| key.starts_with(p.as_str())),
                "{key} is not local"
            );
        }
        for key in [
            CONFIG,
            AUTO_TIDY,
            "roles/dev",
            "retired-teams/t",
            "static-roles/ci",
            "static-keys/ci",
        ] {
            assert!(
                !special
                    .local_storage
                    .iter()
                    .any(|p| key.starts_with(p.as_str())),
                "{key} is local"
            );
        }
        assert_eq!(special.seal_wrap_storage, [CONFIG, STATIC_KEYS]);
    }
}
