//! The metadata stamps every issued key carries, so LiteLLM's spend reports say who asked Vault
//! for it, and tidy can tell this mount's keys from others'. Role metadata may not use the
//! reserved prefix.

use serde_json::{Map, Value};

use crate::framework::Request;

/// Role metadata keys may not start with this: the engine's stamps do.
pub const RESERVED_PREFIX: &str = "vault_";

/// The role the key was issued under.
pub const ROLE: &str = "vault_role";
/// The mount path (e.g. `litellm/`, or `team-a/litellm/` in namespace `team-a`).
pub const MOUNT: &str = "vault_mount";
/// The mount's UUID: tidy touches only keys stamped with its own (see [`Mount::owns`]).
pub const MOUNT_UUID: &str = "vault_mount_uuid";
/// The Vault request that issued the key.
pub const REQUEST_ID: &str = "vault_request_id";
/// The caller's identity entity (empty for root tokens).
pub const ENTITY_ID: &str = "vault_entity_id";
/// The display name of the caller's token.
pub const DISPLAY_NAME: &str = "vault_display_name";

/// On a static role's keys: the static role's name. Tidy leaves such keys alone (no lease
/// accounts for them; the static role does).
pub const STATIC_ROLE: &str = "vault_static_role";

/// The mount a key is issued through.
#[derive(Clone, Copy, Debug)]
pub struct Mount<'a> {
    /// See [`MOUNT`].
    pub path: &'a str,
    /// See [`MOUNT_UUID`]; empty when unknown (the host sent none), and then not stamped.
    pub uuid: &'a str,
}

impl<'a> Mount<'a> {
    /// The mount `req` came through.
    pub fn of(req: &'a Request) -> Mount<'a> {
        Mount {
            path: &req.mount_point,
            uuid: &req.backend_uuid,
        }
    }

    /// Whether a listed key's stamps name this mount. A key with a UUID stamp is ours only if
    /// the UUID is: two clusters may mount the engine at the same path against one LiteLLM.
    /// A key without one (issued before v0.2.0, or when the host sent no UUID) goes by path.
    pub fn owns(&self, metadata: &Map<String, Value>) -> bool {
        match metadata.get(MOUNT_UUID).and_then(Value::as_str) {
            Some(uuid) => !self.uuid.is_empty() && uuid == self.uuid,
            None => metadata.get(MOUNT).and_then(Value::as_str) == Some(self.path),
        }
    }

    /// Writes [`MOUNT`] and, when known, [`MOUNT_UUID`] into `metadata`.
    pub fn apply(&self, metadata: &mut Map<String, Value>) {
        metadata.insert(MOUNT.to_string(), Value::String(self.path.to_string()));
        if !self.uuid.is_empty() {
            metadata.insert(MOUNT_UUID.to_string(), Value::String(self.uuid.to_string()));
        }
    }
}

/// What one issue stamps on its key.
pub struct Stamps<'a> {
    /// See [`ROLE`].
    pub role: &'a str,
    /// See [`Mount`].
    pub mount: Mount<'a>,
    /// See [`REQUEST_ID`].
    pub request_id: &'a str,
    /// See [`ENTITY_ID`].
    pub entity_id: &'a str,
    /// See [`DISPLAY_NAME`].
    pub display_name: &'a str,
}

impl<'a> Stamps<'a> {
    /// What a key issued under `role` by `req`'s caller carries.
    pub fn of(role: &'a str, req: &'a Request) -> Stamps<'a> {
        Stamps {
            role,
            mount: Mount::of(req),
            request_id: &req.id,
            entity_id: &req.entity_id,
            display_name: &req.display_name,
        }
    }

    /// Writes the stamps into `metadata`, over any role metadata of the same name.
    pub fn apply(&self, metadata: &mut Map<String, Value>) {
        self.mount.apply(metadata);
        for (key, value) in [
            (ROLE, self.role),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stamp_uses_the_reserved_prefix_and_wins_over_role_metadata() {
        let mut metadata = Map::new();
        metadata.insert(MOUNT.into(), Value::String("forged/".into()));
        Stamps {
            role: "dev",
            mount: Mount {
                path: "litellm/",
                uuid: "u-1",
            },
            request_id: "r",
            entity_id: "e",
            display_name: "d",
        }
        .apply(&mut metadata);
        assert_eq!(metadata.len(), 6);
        assert!(metadata.keys().all(|k| k.starts_with(RESERVED_PREFIX)));
        assert_eq!(metadata[MOUNT], "litellm/");
        assert_eq!(metadata[MOUNT_UUID], "u-1");
    }

    fn stamped(path: &str, uuid: Option<&str>) -> Map<String, Value> {
        let mut metadata = Map::new();
        Mount {
            path,
            uuid: uuid.unwrap_or(""),
        }
        .apply(&mut metadata);
        metadata
    }

    #[test]
    fn a_mount_owns_keys_with_its_uuid_or_without_one_at_its_path() {
        let ours = Mount {
            path: "litellm/",
            uuid: "u-1",
        };
        assert!(ours.owns(&stamped("litellm/", Some("u-1"))));
        // Another cluster's mount at the same path.
        assert!(!ours.owns(&stamped("litellm/", Some("u-2"))));
        // This mount after a remount: the UUID stays.
        assert!(ours.owns(&stamped("old-path/", Some("u-1"))));
        // Issued before keys carried the UUID.
        assert!(ours.owns(&stamped("litellm/", None)));
        assert!(!ours.owns(&stamped("team-b/litellm/", None)));
        assert!(!ours.owns(&Map::new()));
        // A host that sends no UUID claims no UUID-stamped key.
        let unknown = Mount {
            path: "litellm/",
            uuid: "",
        };
        assert!(!unknown.owns(&stamped("litellm/", Some("u-1"))));
        assert!(unknown.owns(&stamped("litellm/", None)));
        assert!(!stamped("litellm/", None).contains_key(MOUNT_UUID));
    }
}
