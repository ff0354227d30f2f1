//! The metadata stamps every issued key carries, so LiteLLM's spend reports say who asked Vault
//! for it, and tidy can tell this mount's keys from others'. Role metadata may not use the
//! reserved prefix.

use serde_json::{Map, Value};

/// Role metadata keys may not start with this: the engine's stamps do.
pub const RESERVED_PREFIX: &str = "vault_";

/// The role the key was issued under.
pub const ROLE: &str = "vault_role";
/// The mount path (e.g. `litellm/`): tidy touches only keys stamped with its own mount.
pub const MOUNT: &str = "vault_mount";
/// The Vault request that issued the key.
pub const REQUEST_ID: &str = "vault_request_id";
/// The caller's identity entity (empty for root tokens).
pub const ENTITY_ID: &str = "vault_entity_id";
/// The display name of the caller's token.
pub const DISPLAY_NAME: &str = "vault_display_name";

/// On a static role's keys: the static role's name. Tidy leaves such keys alone (no lease
/// accounts for them; the static role does).
pub const STATIC_ROLE: &str = "vault_static_role";

/// What one issue stamps on its key.
pub struct Stamps<'a> {
    /// See [`ROLE`].
    pub role: &'a str,
    /// See [`MOUNT`].
    pub mount: &'a str,
    /// See [`REQUEST_ID`].
    pub request_id: &'a str,
    /// See [`ENTITY_ID`].
    pub entity_id: &'a str,
    /// See [`DISPLAY_NAME`].
    pub display_name: &'a str,
}

impl Stamps<'_> {
    /// Writes the stamps into `metadata`, over any role metadata of the same name.
    pub fn apply(&self, metadata: &mut Map<String, Value>) {
        for (key, value) in [
            (ROLE, self.role),
            (MOUNT, self.mount),
            (REQUEST_ID, self.request_id),
            (ENTITY_ID, self.entity_id),
            (DISPLAY_NAME, self.display_name),
        ] {
            metadata.insert(key.to_string(), Value::String(value.to_string()));
        }
    }
}

/// Whether a listed key belongs to a static role.
pub fn is_static(metadata: &Map<String, Value>) -> bool {
    metadata.contains_key(STATIC_ROLE)
}

/// The mount a listed key was stamped with, if any.
pub fn mount(metadata: &Map<String, Value>) -> Option<&str> {
    metadata.get(MOUNT).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stamp_uses_the_reserved_prefix_and_wins_over_role_metadata() {
        let mut metadata = Map::new();
        metadata.insert(MOUNT.into(), Value::String("forged/".into()));
        Stamps {
            role: "dev",
            mount: "litellm/",
            request_id: "r",
            entity_id: "e",
            display_name: "d",
        }
        .apply(&mut metadata);
        assert_eq!(metadata.len(), 5);
        assert!(metadata.keys().all(|k| k.starts_with(RESERVED_PREFIX)));
        assert_eq!(mount(&metadata), Some("litellm/"));
    }
}
