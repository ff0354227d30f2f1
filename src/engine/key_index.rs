//! The index of issued keys: one storage entry per key this mount issued and has not revoked
//! yet, `keys/<token_id>` → `{key_alias, role, issued_at}`, so that `tidy` can tell a key a
//! lease accounts for from an orphan.
//!
//! Together with the issue WAL it keeps one invariant: from just before `/key/generate` until
//! the key is deleted, every key is covered by a WAL entry or an index entry. Issue writes the
//! entry with its WAL entry before `/key/generate` (it chose the key, so it knows the hash),
//! or, when LiteLLM made the key, after `/key/generate` and before removing its WAL entry;
//! revoke removes it only after LiteLLM confirmed the deletion (or answered that the key was
//! already gone). An entry whose key was never created is removed by the failed issue itself,
//! by rollback, or else by `tidy`.
//!
//! One entry per key, so concurrent issues never write the same storage entry. The index is
//! local storage, like the WAL and the leases it mirrors: each cluster indexes what it issued.
//!
//! Keys issued before the index existed (by an older version of the plugin) are not in it.
//! [`mark_start`] records when this mount started indexing, so `tidy` can leave older keys
//! alone instead of taking them for orphans.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::layout::{INDEX_SINCE, KEY_INDEX};
use crate::engine::schema;
use crate::framework::{Storage, StorageError};

/// What the index remembers about one key. The key itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The key's alias in LiteLLM.
    pub key_alias: String,
    /// The role it was issued for.
    pub role: String,
    /// Unix seconds when it was issued.
    pub issued_at: i64,
}

impl IndexEntry {
    /// An entry for a key issued at `issued_at`.
    pub fn new(key_alias: &str, role: &str, issued_at: SystemTime) -> IndexEntry {
        IndexEntry {
            key_alias: key_alias.to_string(),
            role: role.to_string(),
            issued_at: unix_secs(issued_at),
        }
    }

    /// How long ago the key was issued.
    pub fn age(&self, now: SystemTime) -> Duration {
        let issued = u64::try_from(self.issued_at).unwrap_or(0);
        Duration::from_secs(
            u64::try_from(unix_secs(now))
                .unwrap_or(0)
                .saturating_sub(issued),
        )
    }
}

/// Records a freshly issued key.
pub async fn put(
    storage: &Storage,
    token_id: &str,
    entry: &IndexEntry,
) -> Result<(), StorageError> {
    schema::store(storage, &storage_key(token_id)?, entry, false).await
}

/// Forgets a key (it was deleted in LiteLLM). Forgetting an unknown key succeeds.
pub async fn remove(storage: &Storage, token_id: &str) -> Result<(), StorageError> {
    storage.delete(&storage_key(token_id)?).await
}

/// The entry of a key, if indexed.
pub async fn get(storage: &Storage, token_id: &str) -> Result<Option<IndexEntry>, StorageError> {
    schema::load(storage, &storage_key(token_id)?).await
}

/// Whether a key is indexed.
pub async fn contains(storage: &Storage, token_id: &str) -> Result<bool, StorageError> {
    Ok(storage.get(&storage_key(token_id)?).await?.is_some())
}

/// The hashes of all indexed keys.
pub async fn list(storage: &Storage) -> Result<Vec<String>, StorageError> {
    storage.list(KEY_INDEX).await
}

/// Records that this mount indexes every key it issues from now on, unless already recorded.
/// Any time after the indexing plugin started is correct; earlier is better, since `tidy`
/// judges only keys created after it.
pub async fn mark_start(storage: &Storage, now: SystemTime) -> Result<SystemTime, StorageError> {
    if let Some(since) = started(storage).await? {
        return Ok(since);
    }
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    schema::store(
        storage,
        INDEX_SINCE,
        &Since {
            unix_millis: millis,
        },
        false,
    )
    .await?;
    Ok(now)
}

/// When this mount started indexing, if it has.
pub async fn started(storage: &Storage) -> Result<Option<SystemTime>, StorageError> {
    Ok(schema::load::<Since>(storage, INDEX_SINCE)
        .await?
        .map(|s| UNIX_EPOCH + Duration::from_millis(s.unix_millis)))
}

#[derive(Serialize, Deserialize)]
struct Since {
    unix_millis: u64,
}

/// `keys/<token_id>`, refusing anything but a SHA-256 hex digest so that a malformed hash can
/// never address another storage entry.
fn storage_key(token_id: &str) -> Result<String, StorageError> {
    if token_id.len() == 64 && token_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("{KEY_INDEX}{token_id}"))
    } else {
        Err(StorageError(
            "key index: a key hash must be 64 hex digits".to_string(),
        ))
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[tokio::test]
    async fn put_list_contains_remove() {
        let s = Storage::memory();
        let entry = IndexEntry::new("vault-dev-0123456789ab", "dev", SystemTime::now());
        put(&s, HASH, &entry).await.unwrap();
        assert!(contains(&s, HASH).await.unwrap());
        assert_eq!(get(&s, HASH).await.unwrap(), Some(entry));
        assert_eq!(list(&s).await.unwrap(), [HASH]);
        remove(&s, HASH).await.unwrap();
        remove(&s, HASH).await.unwrap();
        assert!(!contains(&s, HASH).await.unwrap());
        assert!(list(&s).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn malformed_hashes_are_refused() {
        let s = Storage::memory();
        let entry = IndexEntry::new("a", "r", SystemTime::now());
        for bad in ["", "../config", &format!("{}/x", &HASH[..62])] {
            assert!(put(&s, bad, &entry).await.is_err(), "{bad:?}");
        }
        assert!(s.list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_start_is_recorded_once() {
        let s = Storage::memory();
        assert_eq!(started(&s).await.unwrap(), None);
        let first = mark_start(&s, SystemTime::now()).await.unwrap();
        let stored = started(&s).await.unwrap().unwrap();
        // Stored with millisecond precision.
        assert!(first.duration_since(stored).unwrap() < Duration::from_millis(1));
        assert_eq!(mark_start(&s, SystemTime::now()).await.unwrap(), stored);
    }
}
