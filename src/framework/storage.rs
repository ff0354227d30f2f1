//! The mount's storage: the host's `pb.Storage` service over the broker connection, or an
//! in-memory map for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::proto::pb;
use crate::proto::pb::storage_client::StorageClient;
use crate::transport::host_channel::HostChannel;

/// A storage failure (host unreachable, storage refused, undecodable entry).
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// A mount's storage view; keys are relative to the mount. Cheap to clone.
#[derive(Clone)]
pub enum Storage {
    /// The host's storage, reached through the broker.
    Host(StorageClient<HostChannel>),
    /// A process-local map (tests).
    Memory(Arc<Mutex<BTreeMap<String, Vec<u8>>>>),
}

impl Storage {
    /// Empty in-memory storage.
    pub fn memory() -> Storage {
        Storage::Memory(Arc::default())
    }

    /// Reads an entry; `None` when the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            Storage::Host(client) => {
                let reply = client
                    .clone()
                    .get(pb::StorageGetArgs {
                        key: key.to_string(),
                        txn: String::new(),
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                host_result(&reply.err)?;
                Ok(reply.entry.map(|e| e.value))
            }
            Storage::Memory(map) => Ok(lock(map)?.get(key).cloned()),
        }
    }

    /// Writes an entry. `seal_wrap` asks seals that support it to wrap the value again.
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        seal_wrap: bool,
    ) -> Result<(), StorageError> {
        match self {
            Storage::Host(client) => {
                let entry = pb::StorageEntry {
                    key: key.to_string(),
                    value,
                    seal_wrap,
                };
                let reply = client
                    .clone()
                    .put(pb::StoragePutArgs {
                        entry: Some(entry),
                        txn: String::new(),
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                host_result(&reply.err)
            }
            Storage::Memory(map) => {
                lock(map)?.insert(key.to_string(), value);
                Ok(())
            }
        }
    }

    /// Deletes an entry; deleting a missing key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Storage::Host(client) => {
                let reply = client
                    .clone()
                    .delete(pb::StorageDeleteArgs {
                        key: key.to_string(),
                        txn: String::new(),
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                host_result(&reply.err)
            }
            Storage::Memory(map) => {
                lock(map)?.remove(key);
                Ok(())
            }
        }
    }

    /// Lists the next path segment under `prefix`; sub-folders end in `/`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        match self {
            Storage::Host(client) => {
                let reply = client
                    .clone()
                    .list(pb::StorageListArgs {
                        prefix: prefix.to_string(),
                        txn: String::new(),
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                host_result(&reply.err)?;
                Ok(reply.keys)
            }
            Storage::Memory(map) => {
                let map = lock(map)?;
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
            }
        }
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

fn rpc_error(status: tonic::Status) -> StorageError {
    StorageError(status.message().to_string())
}

fn host_result(err: &str) -> Result<(), StorageError> {
    if err.is_empty() {
        Ok(())
    } else {
        Err(StorageError(err.to_string()))
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StorageError> {
    m.lock()
        .map_err(|_| StorageError("in-memory storage poisoned".to_string()))
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
