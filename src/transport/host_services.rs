//! The host's `pb.Storage` and `pb.SystemView` services, reached over the broker connection
//! ([`HostChannel`]), as the framework's storage and system-view backends.

use std::time::Duration;

use crate::framework::storage::{StorageBackend, StorageError, StorageFuture};
use crate::framework::system_view::{SystemViewBackend, SystemViewError, SystemViewFuture};
use crate::proto::logical;
use crate::proto::pb;
use crate::proto::pb::storage_client::StorageClient;
use crate::proto::pb::system_view_client::SystemViewClient;
use crate::transport::host_channel::HostChannel;

/// The mount's storage on the host.
pub struct HostStorage(StorageClient<HostChannel>);

impl HostStorage {
    /// Storage calls over `channel`, with no message size limit (Vault sets none either).
    pub fn new(channel: HostChannel) -> HostStorage {
        HostStorage(
            StorageClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    }
}

impl StorageBackend for HostStorage {
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let reply = self
                .0
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
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, seal_wrap: bool) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let entry = pb::StorageEntry {
                key: key.to_string(),
                value,
                seal_wrap,
            };
            let reply = self
                .0
                .clone()
                .put(pb::StoragePutArgs {
                    entry: Some(entry),
                    txn: String::new(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            host_result(&reply.err)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let reply = self
                .0
                .clone()
                .delete(pb::StorageDeleteArgs {
                    key: key.to_string(),
                    txn: String::new(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            host_result(&reply.err)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(async move {
            let reply = self
                .0
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
        })
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

/// The host's view of the mount.
pub struct HostSystemView(SystemViewClient<HostChannel>);

impl HostSystemView {
    /// System-view calls over `channel`.
    pub fn new(channel: HostChannel) -> HostSystemView {
        HostSystemView(
            SystemViewClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    }
}

impl SystemViewBackend for HostSystemView {
    fn default_lease_ttl(&self) -> SystemViewFuture<'_, Duration> {
        Box::pin(async move {
            let reply = self
                .0
                .clone()
                .default_lease_ttl(pb::Empty {})
                .await
                .map_err(view_error)?;
            Ok(nanos(reply.into_inner().ttl))
        })
    }

    fn max_lease_ttl(&self) -> SystemViewFuture<'_, Duration> {
        Box::pin(async move {
            let reply = self
                .0
                .clone()
                .max_lease_ttl(pb::Empty {})
                .await
                .map_err(view_error)?;
            Ok(nanos(reply.into_inner().ttl))
        })
    }

    fn entity<'a>(&'a self, id: &'a str) -> SystemViewFuture<'a, Option<logical::Entity>> {
        Box::pin(async move {
            let reply = self
                .0
                .clone()
                .entity_info(pb::EntityInfoArgs {
                    entity_id: id.to_string(),
                })
                .await
                .map_err(view_error)?
                .into_inner();
            if !reply.err.is_empty() {
                return Err(SystemViewError(reply.err));
            }
            Ok(reply.entity)
        })
    }

    fn groups_for_entity<'a>(&'a self, id: &'a str) -> SystemViewFuture<'a, Vec<logical::Group>> {
        Box::pin(async move {
            let reply = self
                .0
                .clone()
                .groups_for_entity(pb::EntityInfoArgs {
                    entity_id: id.to_string(),
                })
                .await
                .map_err(view_error)?
                .into_inner();
            if !reply.err.is_empty() {
                return Err(SystemViewError(reply.err));
            }
            Ok(reply.groups)
        })
    }

    fn replication_state(&self) -> SystemViewFuture<'_, u32> {
        Box::pin(async move {
            let reply = self
                .0
                .clone()
                .replication_state(pb::Empty {})
                .await
                .map_err(view_error)?;
            // Flags; a negative value is not one the host sends.
            Ok(u32::try_from(reply.into_inner().state).unwrap_or(0))
        })
    }
}

fn view_error(status: tonic::Status) -> SystemViewError {
    SystemViewError(status.message().to_string())
}

/// A Go `time.Duration` (int64 nanoseconds) as a `Duration`; negatives become zero.
pub fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}
