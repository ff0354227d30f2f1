//! Every entry the engine stores carries `schema_version`, so a later release can tell the
//! formats apart and migrate, and this release refuses an entry written by a newer one instead
//! of misreading it (after a downgrade, or beside a newer node during a rolling upgrade).
//!
//! Entries written before versions existed have none and read as version 1, the format they
//! have. A format change bumps [`CURRENT`] and teaches [`load`] the step from the version
//! before.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::framework::{Storage, StorageError};

/// The format this release writes.
pub const CURRENT: u64 = 1;

/// The field that holds an entry's format version.
pub const FIELD: &str = "schema_version";

/// Reads and decodes the entry at `key`; refuses one from a newer release.
pub async fn load<T: DeserializeOwned>(
    storage: &Storage,
    key: &str,
) -> Result<Option<T>, StorageError> {
    let Some(mut value) = storage.get_json::<Value>(key).await? else {
        return Ok(None);
    };
    if let Value::Object(entry) = &mut value {
        let version = match entry.remove(FIELD) {
            None => 1,
            Some(v) => v.as_u64().ok_or_else(|| {
                StorageError(format!("entry {key:?} has an unreadable {FIELD}: {v}"))
            })?,
        };
        if version > CURRENT {
            return Err(StorageError(format!(
                "entry {key:?} was written by a newer release of the plugin (schema {version}; this release reads up to {CURRENT}): upgrade the plugin again, or restore storage from before the upgrade"
            )));
        }
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| StorageError(format!("entry {key:?} is not valid: {e}")))
}

/// Encodes `value` with the current schema version and writes it at `key`.
pub async fn store<T: Serialize>(
    storage: &Storage,
    key: &str,
    value: &T,
    seal_wrap: bool,
) -> Result<(), StorageError> {
    let mut value =
        serde_json::to_value(value).map_err(|e| StorageError(format!("encoding {key:?}: {e}")))?;
    if let Value::Object(entry) = &mut value {
        entry.insert(FIELD.to_string(), Value::from(CURRENT));
    }
    storage.put_json(key, &value, seal_wrap).await
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        name: String,
    }

    #[tokio::test]
    async fn entries_carry_their_version_and_newer_ones_are_refused() {
        let storage = Storage::memory();
        let entry = Entry { name: "a".into() };
        store(&storage, "e", &entry, false).await.unwrap();
        let raw: Value = storage.get_json("e").await.unwrap().unwrap();
        assert_eq!(raw[FIELD], CURRENT);
        assert_eq!(load::<Entry>(&storage, "e").await.unwrap(), Some(entry));
        // Written before versions existed.
        storage
            .put_json("old", &json!({"name": "b"}), false)
            .await
            .unwrap();
        assert!(load::<Entry>(&storage, "old").await.unwrap().is_some());
        storage
            .put_json("new", &json!({"name": "c", FIELD: CURRENT + 1}), false)
            .await
            .unwrap();
        let err = load::<Entry>(&storage, "new")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("newer release") && err.contains("\"new\""),
            "{err}"
        );
        assert!(load::<Entry>(&storage, "none").await.unwrap().is_none());
    }
}
