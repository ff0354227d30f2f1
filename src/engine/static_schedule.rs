//! When static roles' keys are rotated and their previous keys deleted: a queue of due times,
//! drained by the framework's [`Ticker`](crate::framework::Ticker) every [`TICK`] on the active
//! node only, as Vault's database engine does with its 5 s queue.
//!
//! The queue is rebuilt from storage on the first tick of a process and every
//! [`REBUILD_EVERY`] after (so work written while this node was a standby is picked up after a
//! failover, and overdue rotations happen at once); each rebuild first finishes or drops the
//! rotations a crash interrupted ([`static_rotation::recover`]). A failed rotation is retried
//! after 10 s, doubling up to 5 min, and logged each time; the current key keeps working
//! meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::engine::error::Result;
use crate::engine::path_static_roles::StaticRole;
use crate::engine::rotation_schedule::Next;
use crate::engine::static_rotation::{self, RotationWal, StaticKeys};
use crate::engine::{MountState, layout};
use crate::framework::{Request, WalEntry, wal};

/// How often the queue is looked at.
pub const TICK: Duration = Duration::from_secs(5);

/// How often the queue is rebuilt from storage.
pub const REBUILD_EVERY: Duration = Duration::from_secs(60);

const FIRST_RETRY: Duration = Duration::from_secs(10);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The due times of the mount's static roles.
#[derive(Default)]
pub struct Queue(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    due: HashMap<String, SystemTime>,
    failures: HashMap<String, u32>,
    built_at: Option<SystemTime>,
}

impl Queue {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain maps: a panic elsewhere cannot leave them half-changed.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Static role `name` next needs attention at `at`.
    pub fn schedule(&self, name: &str, at: SystemTime) {
        let mut inner = self.inner();
        inner.failures.remove(name);
        inner.due.insert(name.to_string(), at);
    }

    /// Static role `name` is gone.
    pub fn remove(&self, name: &str) {
        let mut inner = self.inner();
        inner.due.remove(name);
        inner.failures.remove(name);
    }

    /// Work on `name` failed at `now`: retried after a backoff, which is returned.
    pub fn failed(&self, name: &str, now: SystemTime) -> Duration {
        let mut inner = self.inner();
        let failures = inner.failures.entry(name.to_string()).or_default();
        *failures = failures.saturating_add(1);
        let wait = FIRST_RETRY
            .saturating_mul(1 << (*failures - 1).min(8))
            .min(MAX_RETRY);
        inner.due.insert(name.to_string(), now + wait);
        wait
    }

    /// Forces a rebuild at the next tick (storage changed elsewhere).
    pub fn stale(&self) {
        self.inner().built_at = None;
    }

    fn needs_rebuild(&self, now: SystemTime) -> bool {
        self.inner()
            .built_at
            .is_none_or(|at| now.duration_since(at).unwrap_or_default() >= REBUILD_EVERY)
    }

    fn replace(&self, due: HashMap<String, SystemTime>, now: SystemTime) {
        let mut inner = self.inner();
        // A backoff in progress stays in force.
        let backoff: Vec<(String, SystemTime)> = inner
            .failures
            .keys()
            .filter_map(|n| inner.due.get(n).map(|t| (n.clone(), *t)))
            .collect();
        inner.due = due;
        for (name, at) in backoff {
            if let Some(slot) = inner.due.get_mut(&name) {
                *slot = at;
            }
        }
        let Inner { due, failures, .. } = &mut *inner;
        failures.retain(|n, _| due.contains_key(n));
        inner.built_at = Some(now);
    }

    fn take_due(&self, now: SystemTime) -> Vec<String> {
        let inner = self.inner();
        let mut due: Vec<(SystemTime, String)> = inner
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, at)| (*at, n.clone()))
            .collect();
        due.sort();
        due.into_iter().map(|(_, n)| n).collect()
    }

    /// When `name` is due, if queued (tests and reads).
    pub fn due(&self, name: &str) -> Option<SystemTime> {
        self.inner().due.get(name).copied()
    }
}

/// When a static role next needs attention: its rotation, or its previous key's deletion.
pub fn due_at(role: &StaticRole, keys: &StaticKeys, now: SystemTime) -> SystemTime {
    let rotation = role.next_rotation(keys.last_vault_rotation, now);
    keys.previous
        .as_ref()
        .map_or(rotation, |p| p.delete_at.min(rotation))
}

/// One tick: rebuild when due, then do what is due.
pub async fn tick(state: Arc<MountState>, req: Request) -> Result<()> {
    let now = req.now;
    if state.rotations.needs_rebuild(now) {
        rebuild(&state, &req, now).await?;
    }
    for name in state.rotations.take_due(now) {
        let lock = state.static_lock(&name);
        let Ok(_held) = lock.try_lock() else {
            // A request is working on it; look again next tick.
            continue;
        };
        match attend(&state, &req, &name).await {
            Ok(Some(next)) => state.rotations.schedule(&name, next),
            Ok(None) => state.rotations.remove(&name),
            Err(e) => {
                let wait = state.rotations.failed(&name, now);
                tracing::warn!(static_role = %name, error = %e, retry_in_secs = wait.as_secs(), "static role rotation failed; the current key keeps working");
            }
        }
        state.invalidate(&layout::static_keys(&name));
        state.invalidate(&layout::static_role(&name));
    }
    Ok(())
}

/// Finishes interrupted rotations, then queues every static role (and every leftover set of
/// keys whose role is gone).
async fn rebuild(state: &MountState, req: &Request, now: SystemTime) -> Result<()> {
    let storage = &req.storage;
    for id in wal::list(storage).await? {
        let Some(entry) = wal::get(storage, &id).await? else {
            continue;
        };
        if entry.kind == static_rotation::WAL_KIND
            && let Err(e) = recover_entry(state, req, Some(&id), &entry).await
        {
            tracing::warn!(error = %e, "could not finish an interrupted static rotation; retried at the next rebuild");
        }
    }
    let mut due = HashMap::new();
    let mut names = storage.list(layout::STATIC_KEYS).await?;
    names.extend(storage.list(layout::STATIC_ROLES).await?);
    names.sort();
    names.dedup();
    for name in names {
        let role = StaticRole::load(storage, &name).await?;
        let keys = StaticKeys::load(storage, &name).await?;
        let at = match (&role, &keys) {
            (Some(role), Some(keys)) => due_at(role, keys, now),
            _ => now,
        };
        due.insert(name, at);
    }
    state.rotations.replace(due, now);
    Ok(())
}

/// Does what static role `name` needs now; returns when it next needs attention (`None`: never).
async fn attend(state: &MountState, req: &Request, name: &str) -> Result<Option<SystemTime>> {
    let storage = &req.storage;
    let now = req.now;
    let role = StaticRole::load(storage, name).await?;
    let keys = StaticKeys::load(storage, name).await?;
    match (role, keys) {
        (None, None) => Ok(None),
        (None, Some(keys)) => {
            // Deleted, but deleting its keys in LiteLLM failed then.
            let client = state.client(storage).await?;
            static_rotation::delete_all(&client, &keys).await?;
            storage.delete(&layout::static_keys(name)).await?;
            tracing::info!(static_role = %name, "deleted the keys of a deleted static role");
            Ok(None)
        }
        (Some(_), None) => {
            // A create that never finished (no rotation in flight: the rebuild saw to those).
            storage.delete(&layout::static_role(name)).await?;
            tracing::warn!(static_role = %name, "removed a static role whose create did not finish");
            Ok(None)
        }
        (Some(role), Some(mut keys)) => {
            if keys.previous.as_ref().is_some_and(|p| p.delete_at <= now) {
                let client = state.client(storage).await?;
                static_rotation::retire_previous(&client, storage, name, &keys).await?;
                keys.previous = None;
            }
            match role.rotation.next(keys.last_vault_rotation, now) {
                Next::At(at) if at <= now => {
                    let client = state.client(storage).await?;
                    let mount = keys.mount.clone();
                    let rotated = static_rotation::Rotation {
                        client: &client,
                        storage,
                        name,
                        role: &role,
                        before: Some(&keys),
                        adopted: None,
                        mount: &mount,
                        request_id: "",
                        now,
                    }
                    .run()
                    .await?;
                    tracing::info!(static_role = %name, "rotated a static role's key on schedule");
                    Ok(Some(due_at(&role, &rotated, now)))
                }
                Next::Skipped(at) => {
                    tracing::warn!(static_role = %name, "a scheduled rotation's window passed unused; waiting for the next scheduled time");
                    Ok(Some(
                        keys.previous.as_ref().map_or(at, |p| p.delete_at.min(at)),
                    ))
                }
                Next::At(_) => Ok(Some(due_at(&role, &keys, now))),
            }
        }
    }
}

/// Recovers one static rotation WAL entry under its role's lock (busy: left for later).
async fn recover_entry(
    state: &MountState,
    req: &Request,
    id: Option<&str>,
    entry: &WalEntry,
) -> Result<()> {
    let payload: RotationWal = entry.decode().map_err(|e| {
        crate::engine::error::Error::Unreadable(format!(
            "a static rotation WAL entry is unreadable: {e}"
        ))
    })?;
    let lock = state.static_lock(&payload.role);
    let Ok(_held) = lock.try_lock() else {
        return Err(crate::engine::error::Error::Unreadable(format!(
            "static role {:?} is being rotated",
            payload.role
        )));
    };
    let client = state.client(&req.storage).await?;
    static_rotation::recover(&client, &req.storage, id, &payload, req.now).await?;
    state.invalidate(&layout::static_keys(&payload.role));
    Ok(())
}

/// The framework's WAL rollback for a static rotation entry it found old (the ticker's rebuild
/// normally gets there first); the framework deletes the entry afterwards.
pub async fn rollback(state: Arc<MountState>, req: Request, entry: WalEntry) -> Result<()> {
    recover_entry(&state, &req, None, &entry).await
}
