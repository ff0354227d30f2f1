//! `static-roles/<name>` and `static-roles/`: one stable LiteLLM key per role, rotated by Vault
//! on a schedule and handed out without a lease (`static-creds/<name>`), for consumers that
//! cannot renew. Rotation: [`static_rotation`]; schedule: [`static_schedule`].
//!
//! [`static_rotation`]: crate::engine::static_rotation
//! [`static_schedule`]: crate::engine::static_schedule

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::client::Client;
use crate::engine::error::{Error, Result};
use crate::engine::key_settings::{self, Wanted};
use crate::engine::path_roles::{self, Role};
use crate::engine::rotation_schedule::Rotation;
use crate::engine::schema;
use crate::engine::static_rotation::{self, StaticKeys, Superseded};
use crate::engine::{MountState, alias, layout, static_schedule};
use crate::framework::{
    Field, FieldData, FieldType, Operation, Path, Request, Response, existence_check, handler,
};

/// How long the previous key keeps working after a rotation unless the role says otherwise.
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(300);

/// The key fields a static role shares with roles.
const SHARED: [&str; 13] = [
    "models",
    "max_budget",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "team_id",
    "user_id",
    "metadata",
    "key_alias_prefix",
    "key_type",
    "key_settings",
    "verify",
];

static OWN_FIELDS: &[Field] = &[
    Field::new("name", FieldType::String, "Name of the static role.").required(),
    Field::new(
        "key_alias",
        FieldType::String,
        "The key's stable alias in LiteLLM; default <key_alias_prefix>-<name>. Cannot change after create.",
    ),
    Field::new(
        "rotation_period",
        FieldType::Duration,
        "Rotate the key this long after each rotation (at least 1m). Excludes rotation_schedule.",
    ),
    Field::new(
        "rotation_schedule",
        FieldType::String,
        "Rotate at the times of this 5-field cron schedule (minute hour day-of-month month day-of-week), in UTC. Excludes rotation_period.",
    ),
    Field::new(
        "rotation_window",
        FieldType::Duration,
        "With rotation_schedule: how long after each scheduled time a missed rotation may still happen (at least 1h); after it the rotation waits for the next scheduled time. 0 (default): any time.",
    ),
    Field::new(
        "grace_period",
        FieldType::Duration,
        "How long the previous key keeps working after a rotation (default 5m, at most the time between two rotations); then it is deleted.",
    ),
    Field::new(
        "adopt",
        FieldType::Bool,
        "On create: take over a live LiteLLM key that already has key_alias. It keeps working for grace_period after Vault's first key exists, then it is deleted. Without it, such a key makes the create fail.",
    ),
];

static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
    let mut fields = OWN_FIELDS.to_vec();
    fields.extend(path_roles::shared_fields(&SHARED));
    fields
});

static LIST_FIELDS: &[Field] = &[];

const SYNOPSIS: &str = "Manage static roles: one LiteLLM key each, rotated by Vault.";
const DESCRIPTION: &str = "\
A static role owns one LiteLLM virtual key with a stable alias, read without a lease from
static-creds/<name>, for consumers that cannot renew leases. Vault rotates it every
rotation_period or on rotation_schedule (and on rotate-role/<name>): a new key takes the alias,
and the previous key keeps working for grace_period, then is deleted.

The key settings are those of a role's keys (models, per-key budgets and limits, team_id,
user_id, metadata, key_settings, key_type). Creating a static role makes its first key at once,
and fails with nothing left behind if LiteLLM refuses. Changed settings apply to the current key
at once (key_type at the next rotation). Deleting a static role deletes its keys in LiteLLM:
Vault made them, and nobody else knows them.

Each key also expires in LiteLLM one hour plus grace_period after its next rotation was due, so a
key Vault stops rotating dies by itself.";

/// A stored static role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticRole {
    /// What its key may do (a role's key fields; its TTLs, templates and team limits unused).
    pub key: Role,
    /// The stable alias.
    pub key_alias: String,
    /// When it rotates.
    pub rotation: Rotation,
    /// Seconds the previous key keeps working after a rotation.
    pub grace_period: u64,
}

impl StaticRole {
    /// Loads static role `name`.
    pub async fn load(storage: &crate::framework::Storage, name: &str) -> Result<Option<Self>> {
        Ok(schema::load(storage, &layout::static_role(name)).await?)
    }

    /// The grace period.
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.grace_period)
    }

    /// When the key is next rotated, after a rotation at `last`.
    pub fn next_rotation(&self, last: SystemTime, now: SystemTime) -> SystemTime {
        self.rotation.next(last, now).time()
    }

    fn apply(
        d: &FieldData,
        name: &str,
        before: Option<&StaticRole>,
        now: SystemTime,
    ) -> Result<Self> {
        let mut key = before.map(|b| b.key.clone()).unwrap_or_default();
        key.apply(d)?;
        let key_alias = match (d.str("key_alias").map(str::trim), before) {
            (Some(asked), Some(b)) if asked != b.key_alias => {
                return Err(Error::invalid(format!(
                    "key_alias cannot change (it is {:?}): delete the static role and create it again",
                    b.key_alias
                )));
            }
            (_, Some(b)) => b.key_alias.clone(),
            (Some(asked), None) if !asked.is_empty() => {
                validate_alias(asked)?;
                asked.to_string()
            }
            _ => alias::stem(&key.key_alias_prefix, name),
        };
        let rotation = Rotation::from_fields(
            d.duration("rotation_period"),
            d.str("rotation_schedule"),
            d.duration("rotation_window"),
            before.map(|b| &b.rotation),
        )?;
        let gap = rotation.shortest_gap(now);
        let grace = match d.duration("grace_period") {
            Some(grace) if grace > gap => {
                return Err(Error::invalid(format!(
                    "grace_period ({}s) must not be longer than the time between two rotations ({}s)",
                    grace.as_secs(),
                    gap.as_secs()
                )));
            }
            Some(grace) => grace,
            None => before
                .map(StaticRole::grace_period)
                .unwrap_or(DEFAULT_GRACE_PERIOD)
                .min(gap),
        };
        Ok(StaticRole {
            key,
            key_alias,
            rotation,
            grace_period: grace.as_secs(),
        })
    }
}

/// The `static-roles/<name>` and `static-roles/` paths.
pub fn paths() -> Vec<Path<MountState>> {
    vec![
        Path::new("static-roles/", LIST_FIELDS)
            .operation(Operation::List, handler(list))
            .help(
                "List the static roles.",
                "Lists the names of all static roles.",
            ),
        Path::new("static-roles/{name}", FIELDS.as_slice())
            .operation(Operation::Read, handler(read))
            .operation(Operation::Create, handler(write))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .existence(existence_check(exists))
            .help(SYNOPSIS, DESCRIPTION),
    ]
}

async fn exists(_: Arc<MountState>, req: Request) -> Result<bool> {
    let Ok(name) = path_roles::role_name(&req.data) else {
        return Ok(false);
    };
    Ok(req.storage.get(&layout::static_role(name)).await?.is_some())
}

async fn list(_: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    Ok(Some(Response::list(
        req.storage.list(layout::STATIC_ROLES).await?,
    )))
}

async fn read(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = path_roles::role_name(&req.data)?;
    let Some(role) = state.static_role(&req.storage, name).await? else {
        return Ok(None);
    };
    let keys = state.static_keys(&req.storage, name).await?;
    let mut data = role.key.key_fields_json();
    data.insert("key_alias".into(), json!(role.key_alias));
    data.insert("grace_period".into(), json!(role.grace_period));
    data.extend(role.rotation.to_json());
    if let Some(keys) = keys {
        let next = role.next_rotation(keys.last_vault_rotation, req.now);
        data.insert("token_id".into(), json!(keys.current.token_id));
        data.insert(
            "last_vault_rotation".into(),
            rfc3339(keys.last_vault_rotation),
        );
        data.insert("next_vault_rotation".into(), rfc3339(next));
    }
    Ok(Some(Response::data(Value::Object(data))))
}

async fn write(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = path_roles::role_name(&req.data)?.to_string();
    if Role::load(&req.storage, &name).await?.is_some() {
        return Err(Error::invalid(format!(
            "name {name:?} is a role already: a name may not be both a role and a static role"
        )));
    }
    let lock = state.static_lock(&name);
    let _held = lock.lock().await;
    let before = StaticRole::load(&req.storage, &name).await?;
    let role = StaticRole::apply(&req.data, &name, before.as_ref(), req.now)?;
    let client = state.client(&req.storage).await?;
    let wanted = Wanted {
        models: Wanted::of(&req, before.as_ref().map(|b| &b.key), &role.key).models,
        probe: false,
    };
    let checked = key_settings::check(Some(&client), &req, &name, &role.key, wanted).await?;
    let warnings = checked.finish(&req).await;
    let key = layout::static_role(&name);
    let result = match &before {
        None => create(&state, &client, &req, &name, &role).await,
        Some(before) => update(&state, &client, &req, &name, before, &role).await,
    };
    state.invalidate(&key);
    state.invalidate(&layout::static_keys(&name));
    result?;
    Ok((!warnings.is_empty()).then(|| Response {
        warnings,
        ..Response::default()
    }))
}

/// Stores the role, then makes its first key; undoes the store if that fails.
async fn create(
    state: &MountState,
    client: &Client,
    req: &Request,
    name: &str,
    role: &StaticRole,
) -> Result<()> {
    let adopt = req.data.bool("adopt").unwrap_or(false);
    for other in req.storage.list(layout::STATIC_ROLES).await? {
        if let Some(o) = StaticRole::load(&req.storage, &other).await?
            && o.key_alias == role.key_alias
        {
            return Err(Error::invalid(format!(
                "key_alias {:?} belongs to static role {other:?} already",
                role.key_alias
            )));
        }
    }
    let holders: Vec<_> = client
        .list_aliases(&role.key_alias)
        .await
        .map_err(|e| {
            Error::litellm(
                "LiteLLM could not list the keys with the static role's alias",
                e,
            )
        })?
        .into_iter()
        .filter(|k| k.key_alias == role.key_alias)
        .collect();
    let adopted = match (holders.as_slice(), adopt) {
        ([], _) => None,
        ([holder], true) => Some(Superseded {
            token_id: holder.token.clone(),
            expires: holder.expires_at,
        }),
        ([_], false) => {
            return Err(Error::invalid(format!(
                "key_alias {:?} is held by a LiteLLM key already: write adopt=true to take it over (it keeps working for grace_period), or choose another key_alias",
                role.key_alias
            )));
        }
        (_, _) => {
            return Err(Error::invalid(format!(
                "key_alias {:?} is held by {} LiteLLM keys: adopt takes over one key only; delete the others or choose another key_alias",
                role.key_alias,
                holders.len()
            )));
        }
    };
    // Stored first: nothing changes in LiteLLM before a storage write of this request.
    let key = layout::static_role(name);
    schema::store(&req.storage, &key, role, false).await?;
    let rotated = static_rotation::Rotation {
        client,
        storage: &req.storage,
        name,
        role,
        before: None,
        adopted,
        mount: &req.mount_point,
        request_id: &req.id,
        now: req.now,
    }
    .run()
    .await;
    match rotated {
        Ok(keys) => {
            state
                .rotations
                .schedule(name, static_schedule::due_at(role, &keys, req.now));
            tracing::info!(static_role = %name, key_alias = %role.key_alias, "created a static role and its first key");
            Ok(())
        }
        Err(e) => {
            if let Err(d) = req.storage.delete(&key).await {
                tracing::warn!(static_role = %name, error = %d, "could not take back a static role whose first key failed; the schedule retries it");
            }
            Err(e)
        }
    }
}

/// Stores the changed role and applies it to the current key at once; restores the role if
/// LiteLLM refuses.
async fn update(
    state: &MountState,
    client: &Client,
    req: &Request,
    name: &str,
    before: &StaticRole,
    role: &StaticRole,
) -> Result<()> {
    if req.data.bool("adopt") == Some(true) {
        return Err(Error::invalid(
            "adopt applies only when a static role is created",
        ));
    }
    let key = layout::static_role(name);
    schema::store(&req.storage, &key, role, false).await?;
    let Some(keys) = StaticKeys::load(&req.storage, name).await? else {
        // Its create is still finishing (or never did: the schedule removes it).
        return Ok(());
    };
    let changed = role.key != before.key
        || role.rotation != before.rotation
        || role.grace_period != before.grace_period;
    if changed
        && let Err(e) = static_rotation::apply_settings(client, name, role, &keys, req.now).await
    {
        schema::store(&req.storage, &key, before, false).await?;
        return Err(e);
    }
    state
        .rotations
        .schedule(name, static_schedule::due_at(role, &keys, req.now));
    Ok(())
}

async fn delete(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = path_roles::role_name(&req.data)?.to_string();
    let lock = state.static_lock(&name);
    let _held = lock.lock().await;
    let role_key = layout::static_role(&name);
    let keys_key = layout::static_keys(&name);
    // The role goes first (a storage write before LiteLLM changes); should deleting its keys
    // fail, the schedule retries it, and so does another delete.
    req.storage.delete(&role_key).await?;
    state.invalidate(&role_key);
    if let Some(keys) = StaticKeys::load(&req.storage, &name).await? {
        let client = state.client(&req.storage).await?;
        if let Err(e) = static_rotation::delete_all(&client, &keys).await {
            state.rotations.schedule(&name, req.now);
            return Err(e);
        }
        req.storage.delete(&keys_key).await?;
        state.invalidate(&keys_key);
    }
    state.rotations.remove(&name);
    Ok(None)
}

/// What LiteLLM accepts as an alias whatever its format checks: 1 to 255 characters, no `..`,
/// no control characters or spaces.
fn validate_alias(alias: &str) -> Result<()> {
    let valid = !alias.is_empty()
        && alias.len() <= 255
        && !alias.contains("..")
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "key_alias {alias:?} is invalid: use 1 to 255 letters, digits, '_', '-', '/', '.' or '@', without '..'"
        )))
    }
}

/// A time as static reads show it (RFC 3339, UTC, with fractional seconds).
pub fn rfc3339(t: SystemTime) -> Value {
    Value::String(humantime::format_rfc3339_nanos(t).to_string())
}
