//! `creds/<name>`: issue a fresh LiteLLM key for a role, wrapped in a lease.
//!
//! Issuing is crash-safe. The plugin chooses the key's secret itself, so it knows the key's
//! hash before the key exists: a WAL entry (alias and hash) and the key's [`key_index`] entry
//! are written, concurrently, before LiteLLM is asked to create the key, and the WAL entry is
//! removed only once the lease response is built. If the plugin dies in between, rollback
//! deletes the key by its alias and drops its index entry. A proxy that refuses chosen keys
//! (`disable_custom_api_keys`) makes the key itself; its index entry is then written after
//! `/key/generate`, still before the WAL entry goes.
//!
//! [`key_index`]: crate::engine::key_index

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::engine::MountState;
use crate::engine::alias;
use crate::engine::client::ChosenKey;
use crate::engine::error::{Error, Result};
use crate::engine::key_index::{self, IndexEntry};
use crate::engine::key_owner;
use crate::engine::path_roles::{self, Role};
use crate::engine::secret_key::{self, IssueWal, KeyLease};
use crate::engine::stamps::Stamps;
use crate::framework::lease::{MountLeaseLimits, TtlRequest, calculate_ttl, human_duration};
use crate::framework::{
    Field, FieldType, LeaseOptions, Operation, Path, Request, Response, StorageError, handler, wal,
};

static FIELDS: &[Field] = &[
    Field::new(
        "name",
        FieldType::String,
        "Name of the role to issue a key for.",
    )
    .required(),
    Field::new(
        "ttl",
        FieldType::Duration,
        "Ask for a lease shorter than the role's TTL (update only).",
    ),
];

const SYNOPSIS: &str = "Issue a LiteLLM virtual key for a role.";
const DESCRIPTION: &str = "\
Creates a LiteLLM virtual key scoped by the role and returns it in a lease. The key expires in
LiteLLM shortly after the lease, so it dies even if Vault never revokes it; renewing the lease
extends it, and revoking the lease deletes it.";

/// The `creds/<name>` path.
pub fn path() -> Path<MountState> {
    Path::new("creds/{name}", FIELDS)
        .operation(Operation::Read, handler(issue))
        .operation(Operation::Update, handler(issue))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn issue(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let role_name = path_roles::role_name(&req.data)?.to_string();
    let Some(role) = state.role(&req.storage, &role_name).await? else {
        return Err(missing_here(&req, Error::NoSuchRole(role_name)).await);
    };
    // Before the WAL entry and LiteLLM: a caller the role's templates cannot resolve costs nothing.
    let owner = key_owner::resolve(&role, &req).await?;
    let alias = alias::issued(&role.key_alias_prefix, &role_name);
    let client = state.client(&req.storage).await?;

    // Choosing the secret here makes its hash known before the key exists, so the index entry
    // is written together with the WAL entry instead of after `/key/generate`.
    let chosen = client
        .accepts_chosen_keys()
        .then(ChosenKey::random)
        .flatten();
    let pre_indexed = chosen.as_ref().map(ChosenKey::token);
    let issued_at = req.now;
    let index_entry = IndexEntry::new(&alias, &role_name, issued_at);
    let wal_entry = IssueWal {
        key_alias: alias.clone(),
        token_id: pre_indexed.clone(),
    };
    // Independent, so concurrent: one host call each.
    let (limits, wal_id, indexed) = tokio::join!(
        req.system.lease_limits_for(role.ttl()),
        wal::put(&req.storage, secret_key::WAL_KIND, &wal_entry, issued_at),
        async {
            match &pre_indexed {
                Some(token) => key_index::put(&req.storage, token, &index_entry).await,
                None => Ok(()),
            }
        },
    );
    let written = Written {
        wal_id: wal_id.as_ref().ok().cloned(),
        indexed: pre_indexed.clone().filter(|_| indexed.is_ok()),
    };
    let prepared = (|| {
        let wal_id = wal_id?;
        indexed?;
        Ok((wal_id, lease_ttl(&req, &role, limits?, issued_at)?))
    })();
    let (wal_id, (ttl, warnings)) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            written.undo(&req).await;
            return Err(e);
        }
    };

    if role.limits.per_user() {
        // After the WAL entry (a storage write), so only the node that can write changes
        // LiteLLM; before the key, so the user's spend is recorded from its first call.
        let member = match (&owner.team_id, &owner.user_id) {
            (Some(team), Some(user)) => state.ensure_member(&client, team, user).await,
            _ => Err(Error::invalid(
                "the role limits each user but the key has no user: set user_id or user_id_template",
            )),
        };
        if let Err(e) = member {
            written.undo(&req).await;
            return Err(e);
        }
    }
    // The role's key_settings go along; its typed fields win over them.
    let generated = client
        .generate_with(
            &role.generate_request(
                alias.clone(),
                chosen,
                ttl + secret_key::EXPIRY_BUFFER,
                owner,
                &Stamps::of(&role_name, &req),
            ),
            &role.key_settings,
        )
        .await;
    let generated = match generated {
        Ok(generated) => generated,
        Err(e) => {
            // The key may exist even though the call failed (a timeout after LiteLLM acted):
            // delete by alias now; if that fails too, the WAL entry lets rollback do it.
            if client
                .delete_aliases(std::slice::from_ref(&alias))
                .await
                .is_ok()
            {
                written.undo(&req).await;
            }
            tracing::warn!(role = %role_name, key_alias = %alias, error = %e, "issuing a key failed");
            return Err(Error::litellm("LiteLLM could not issue the key", e));
        }
    };

    let token_id = generated.token.clone();
    if written.indexed.as_deref() != Some(token_id.as_str()) {
        // LiteLLM made the key itself (it refuses chosen ones). Indexed before the WAL entry
        // goes, so tidy always finds the key under one of the two; should this fail, no lease
        // is created and rollback deletes the key.
        key_index::put(&req.storage, &token_id, &index_entry).await?;
        if let Some(unused) = &written.indexed {
            key_index::remove(&req.storage, unused).await?;
        }
    }
    let key_expires = issued_at + ttl + secret_key::EXPIRY_BUFFER;
    let data = json!({
        "key": generated.key,
        "key_alias": alias,
        "token_id": token_id,
        "models": role.models,
        "max_budget": role.max_budget,
        "expires": humantime::format_rfc3339_seconds(key_expires).to_string(),
        "role": role_name,
    });
    let lease = LeaseOptions {
        ttl,
        max_ttl: role.max_ttl(),
        renewable: true,
        increment: Duration::ZERO,
        issue_time: issued_at,
    };
    let internal = KeyLease {
        role: role_name.clone(),
        key_alias: alias.clone(),
        token_id,
    }
    .to_internal_data();
    let mut response = secret_key::secret_type().response(data, internal, lease);
    response.warnings = warnings;

    // The lease now accounts for the key. Should this delete fail, the request fails, no lease
    // is created, and rollback deletes the key.
    wal::delete(&req.storage, &wal_id).await?;
    tracing::debug!(role = %role_name, key_alias = %alias, ttl_secs = ttl.as_secs(), "issued key");
    Ok(Some(response))
}

/// The error for something this node does not have. On an HA standby it may only not have it
/// yet (its replica lags the active node by some ms): the request is handed to the active
/// node, which decides, instead of refusing a role created a moment ago.
pub async fn missing_here(req: &Request, missing: Error) -> Error {
    match req.system.is_standby().await {
        Ok(true) => Error::from(StorageError::forward_to_active(&missing.to_string())),
        _ => missing,
    }
}

/// What an issue wrote to storage before its key existed.
struct Written {
    wal_id: Option<String>,
    indexed: Option<String>,
}

impl Written {
    /// Takes back both entries once no key exists. Best effort: a WAL entry left behind is
    /// rolled back (the key is already gone), an index entry left behind is removed by tidy.
    async fn undo(&self, req: &Request) {
        let (wal_deleted, unindexed) = tokio::join!(
            async {
                match &self.wal_id {
                    Some(id) => wal::delete(&req.storage, id).await,
                    None => Ok(()),
                }
            },
            async {
                match &self.indexed {
                    Some(token) => key_index::remove(&req.storage, token).await,
                    None => Ok(()),
                }
            },
        );
        if let Err(e) = wal_deleted.and(unindexed) {
            tracing::warn!(error = %e, "could not clean up after a failed issue; rollback and tidy will");
        }
    }
}

/// The lease TTL for this issue (and the warnings to show): the role's TTL, or the shorter one
/// the caller asked for, capped as Vault's `CalculateTTL` does.
fn lease_ttl(
    req: &Request,
    role: &Role,
    limits: MountLeaseLimits,
    now: SystemTime,
) -> Result<(Duration, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut ttl_request = TtlRequest {
        backend_ttl: role.ttl(),
        backend_max_ttl: role.max_ttl(),
        ..TtlRequest::default()
    };
    if let Some(asked) = req.data.duration("ttl").filter(|t| !t.is_zero()) {
        let role_ttl = if role.ttl > 0 {
            role.ttl()
        } else {
            limits.default_ttl
        };
        if asked > role_ttl {
            warnings.push(format!(
                "requested ttl of {:?} exceeds the role's ttl of {:?}; the role's ttl is used",
                human_duration(asked),
                human_duration(role_ttl)
            ));
        } else {
            ttl_request.backend_ttl = asked;
        }
    }
    let calculated =
        calculate_ttl(limits, ttl_request, now).map_err(|e| Error::invalid(e.to_string()))?;
    warnings.extend(calculated.warnings);
    Ok((calculated.ttl, warnings))
}
