//! The mount's storage: whatever the host serves (the transport implements [`StorageBackend`]
//! over the broker connection), or an in-memory map for tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A storage failure (host unreachable, storage refused, undecodable entry).
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// What a storage write says on a node whose storage is read-only (an HA standby). OpenBao
/// forwards a request whose error contains it to the active node, so an error that keeps this
/// text hands the request over.
pub const READ_ONLY_STORAGE: &str = "cannot write to readonly storage";

impl StorageError {
    /// Whether this is a standby's refusal to write.
    pub fn is_read_only(&self) -> bool {
        self.0.contains(READ_ONLY_STORAGE)
    }

    /// An error that makes a standby forward the request to the active node, saying `why`.
    pub fn forward_to_active(why: &str) -> StorageError {
        StorageError(format!("{READ_ONLY_STORAGE} ({why})"))
    }
}

/// What a storage call returns: a boxed future borrowing the storage and the key.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// The four operations every Vault host serves on a mount's storage (HashiCorp's and
/// OpenBao's alike; OpenBao's transactions are not used). Keys are relative to the mount.
pub trait StorageBackend: Send + Sync {
    /// Reads an entry; `None` when the key does not exist.
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>>;
    /// Writes an entry. `seal_wrap` asks seals that support it to wrap the value again.
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, seal_wrap: bool) -> StorageFuture<'a, ()>;
    /// Deletes an entry; deleting a missing key succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()>;
    /// Lists the next path segment under `prefix`; sub-folders end in `/`.
    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>>;
}

/// A mount's storage view. Cheap to clone.
#[derive(Clone)]
pub struct Storage(Arc<dyn StorageBackend>);

impl Storage {
    /// Storage served by `backend`.
    pub fn new(backend: impl StorageBackend + 'static) -> Storage {
        Storage(Arc::new(backend))
    }

    /// Empty in-memory storage.
    pub fn memory() -> Storage {
        Storage::new(MemoryStorage::default())
    }

    /// Reads an entry; `None` when the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key).await
    }

    /// Writes an entry. `seal_wrap` asks seals that support it to wrap the value again.
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        seal_wrap: bool,
    ) -> Result<(), StorageError> {
        self.0.put(key, value, seal_wrap).await
    }

    /// Deletes an entry; deleting a missing key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).await
    }

    /// Lists the next path segment under `prefix`; sub-folders end in `/`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.0.list(prefix).await
    }

    /// Reads and decodes a JSON entry.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.get(key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StorageError(format!("entry {key:?} is not valid: {e}"))),
            None => Ok(None),
        }
    }

    /// Encodes and writes a JSON entry.
    pub async fn put_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        seal_wrap: bool,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| StorageError(format!("encoding {key:?}: {e}")))?;
        self.put(key, bytes, seal_wrap).await
    }
}

/// A process-local map, as Go's `logical.InmemStorage` (tests).
#[derive(Default)]
pub struct MemoryStorage(Mutex<BTreeMap<String, Vec<u8>>>);

impl MemoryStorage {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>>, StorageError> {
        self.0
            .lock()
            .map_err(|_| StorageError("in-memory storage poisoned".to_string()))
    }
}

impl StorageBackend for MemoryStorage {
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { Ok(self.lock()?.get(key).cloned()) })
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, _seal_wrap: bool) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.lock()?.insert(key.to_string(), value);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.lock()?.remove(key);
            Ok(())
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(async move {
            let map = self.lock()?;
            let mut keys: Vec<String> = map
                .keys()
                .filter_map(|k| k.strip_prefix(prefix))
                .map(|rest| match rest.find('/') {
                    Some(i) => rest[..=i].to_string(),
                    None => rest.to_string(),
                })
                .collect();
            keys.dedup();
            Ok(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_storage_lists_one_level_like_vault() {
        let s = Storage::memory();
        for key in ["roles/a", "roles/b", "roles/sub/c", "config", "wal/1"] {
            s.put(key, b"{}".to_vec(), false).await.unwrap();
        }
        assert_eq!(s.list("roles/").await.unwrap(), ["a", "b", "sub/"]);
        assert_eq!(s.list("").await.unwrap(), ["config", "roles/", "wal/"]);
        s.delete("roles/a").await.unwrap();
        s.delete("missing").await.unwrap();
        assert_eq!(s.get("roles/a").await.unwrap(), None);
        assert_eq!(s.get("roles/b").await.unwrap().as_deref(), Some(&b"{}"[..]));
    }
}
