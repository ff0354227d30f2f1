//! The write-ahead log: a record written before an external side effect and removed once the
//! effect is safely accounted for (e.g. once the lease response is built). Records left behind
//! by a crash are undone by the periodic `rollback` request.
//!
//! Entries use the Go framework's layout (`wal/<uuid>` holding
//! `{"type", "data", "created_at"}`), so the format is familiar to Vault operators.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::storage::{Storage, StorageError};
use super::system_view::SystemView;
use super::{Backend, BoxFuture, RawRequest, Request, Result};

/// Storage prefix of WAL entries (declared local storage: never replicated).
pub const WAL_PREFIX: &str = "wal/";

/// Entries younger than this are not rolled back: their operation may still be in flight.
pub const DEFAULT_ROLLBACK_MIN_AGE: Duration = Duration::from_secs(10 * 60);

/// One WAL record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WalEntry {
    /// What kind of side effect the entry guards; selects the undo logic.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the undo needs.
    pub data: Value,
    /// Unix seconds when the entry was written.
    pub created_at: i64,
    /// Rollbacks started on the entry so far (not in Go's layout; absent there means none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl WalEntry {
    /// The payload as the type its writer stored.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// How long ago the entry was written.
    pub fn age(&self, now: SystemTime) -> Duration {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Duration::from_secs(now.saturating_sub(u64::try_from(self.created_at).unwrap_or(0)))
    }
}

/// Undoes one WAL entry. Returning `Ok` deletes the entry; an error keeps it for the next run.
pub type WalRollback<S> =
    Arc<dyn Fn(Arc<S>, Request, WalEntry) -> BoxFuture<Result<()>> + Send + Sync>;

/// Wraps an `async fn(Arc<S>, Request, WalEntry) -> Result<()>` as a [`WalRollback`].
pub fn rollback_fn<S, F, Fut, E>(f: F) -> WalRollback<S>
where
    F: Fn(Arc<S>, Request, WalEntry) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<super::Error>,
{
    Arc::new(move |state, req, entry| {
        let done = f(state, req, entry);
        Box::pin(async move { done.await.map_err(Into::into) })
    })
}

/// Writes a WAL entry of `kind` holding `data`, made at `now`, and returns its id.
pub async fn put<T: Serialize>(
    storage: &Storage,
    kind: &str,
    data: &T,
    now: SystemTime,
) -> Result<String, StorageError> {
    let data = serde_json::to_value(data)
        .map_err(|e| StorageError(format!("encoding a {kind:?} WAL entry: {e}")))?;
    let id = uuid::Uuid::new_v4().to_string();
    let created_at = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let entry = WalEntry {
        kind: kind.to_string(),
        data,
        created_at,
        attempts: 0,
    };
    storage
        .put_json(&format!("{WAL_PREFIX}{id}"), &entry, false)
        .await?;
    Ok(id)
}

/// Reads a WAL entry.
pub async fn get(storage: &Storage, id: &str) -> Result<Option<WalEntry>, StorageError> {
    storage.get_json(&format!("{WAL_PREFIX}{id}")).await
}

/// Deletes a WAL entry (its operation completed or was undone).
pub async fn delete(storage: &Storage, id: &str) -> Result<(), StorageError> {
    storage.delete(&format!("{WAL_PREFIX}{id}")).await
}

/// Lists the ids of all WAL entries.
pub async fn list(storage: &Storage) -> Result<Vec<String>, StorageError> {
    storage.list(WAL_PREFIX).await
}

/// Serves the host's periodic `rollback` request: undoes every entry older than the backend's
/// minimum age (any age when the request data has `immediate`).
pub(super) async fn rollback<S: Send + Sync + 'static>(
    backend: &Backend<S>,
    raw: RawRequest,
    storage: Storage,
    system: SystemView,
) -> Result<()> {
    let Some(undo) = &backend.wal_rollback else {
        return Ok(());
    };
    let immediate = raw.data.contains_key("immediate");
    let now = backend.clock.now();
    for id in list(&storage).await? {
        let entry = match get(&storage, &id).await {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(wal_id = %id, error = %e, "skipping unreadable WAL entry");
                continue;
            }
        };
        if !immediate && entry.age(now) < backend.wal_rollback_min_age {
            continue;
        }
        // A storage write before any side effect: a node that cannot write (a standby the
        // tick reached anyway) must not undo what the active node may still be doing.
        let claimed = WalEntry {
            attempts: entry.attempts.saturating_add(1),
            ..entry.clone()
        };
        match storage
            .put_json(&format!("{WAL_PREFIX}{id}"), &claimed, false)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_read_only() => return Ok(()),
            Err(e) => {
                tracing::warn!(wal_id = %id, error = %e, "cannot claim WAL entry; will retry");
                continue;
            }
        }
        let request = Request::internal(&raw, &storage, &system, now);
        match undo(backend.state().clone(), request, entry.clone()).await {
            Ok(()) => delete(&storage, &id).await?,
            Err(e) => {
                tracing::warn!(wal_id = %id, kind = %entry.kind, error = %e, "WAL rollback failed; will retry")
            }
        }
    }
    Ok(())
}
