//! The `litellm_key` secret: renew extends the key's expiry in LiteLLM, revoke deletes it.
//!
//! A lease's internal data holds only what renew and revoke need — the role, the alias and the
//! key's hash — never the key itself.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::MountState;
use crate::engine::client::Deleted;
use crate::engine::error::{Error, Result};
use crate::framework::lease::{TtlRequest, calculate_ttl};
use crate::framework::{LeaseOptions, Request, Response, SecretType, WalEntry, handler};

/// Secret type name stored in each lease.
pub const SECRET_TYPE: &str = "litellm_key";

/// WAL kind guarding a key between `/key/generate` and its lease.
pub const WAL_KIND: &str = "litellm_key";

/// LiteLLM's own expiry is this much later than the lease's, so the key never dies before
/// its lease, yet dies on its own soon after if Vault never revokes it.
pub const EXPIRY_BUFFER: Duration = Duration::from_secs(5);

/// After this long a WAL entry is dropped with a warning, so one that can never be undone does
/// not retry forever (the key has long expired in LiteLLM by then anyway).
pub const WAL_GIVE_UP_AGE: Duration = Duration::from_secs(24 * 3600);

/// The WAL payload of an issue: which key to delete should the issue not reach its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueWal {
    /// The key's alias: rollback deletes by it, since the key's hash may be unknown.
    pub key_alias: String,
    /// The key's hash when the plugin chose the key (and indexed it before it existed); `None`
    /// when LiteLLM makes the key, and in entries of versions before the key index.
    #[serde(default)]
    pub token_id: Option<String>,
}

/// Renew and revoke come with their lease; a request without one is not the host's.
const NO_LEASE: &str = "request carries no lease";

/// What a lease remembers about its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyLease {
    /// The role the key was issued for.
    pub role: String,
    /// The key's alias in LiteLLM.
    pub key_alias: String,
    /// SHA-256 of the key: LiteLLM's identifier for it.
    pub token_id: String,
}

impl KeyLease {
    /// As lease internal data.
    pub fn to_internal_data(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    fn from_request(req: &Request) -> Result<(KeyLease, LeaseOptions)> {
        let secret = req
            .secret
            .as_ref()
            .ok_or_else(|| Error::invalid(NO_LEASE))?;
        let lease = serde_json::from_value(Value::Object(secret.internal_data.clone()))
            .map_err(|e| Error::Unreadable(format!("lease internal data is unreadable: {e}")))?;
        Ok((lease, secret.lease))
    }
}

/// The secret type, with its renew and revoke handlers.
pub fn secret_type() -> SecretType<MountState> {
    SecretType {
        name: SECRET_TYPE,
        renew: Some(handler(renew)),
        revoke: handler(revoke),
    }
}

async fn renew(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let (key, options) = KeyLease::from_request(&req)?;
    let role = state.role(&req.storage, &key.role).await?.ok_or_else(|| {
        Error::invalid(format!(
            "role {:?} was deleted, so this lease cannot be renewed (it can still be revoked)",
            key.role
        ))
    })?;
    let own_ttl = if options.increment.is_zero() {
        role.ttl()
    } else {
        options.increment
    };
    let (client, limits) = tokio::try_join!(state.client(&req.storage), async {
        Ok(req.system.lease_limits_for(own_ttl).await?)
    })?;
    let ttl_request = TtlRequest {
        increment: options.increment,
        backend_ttl: role.ttl(),
        backend_max_ttl: role.max_ttl(),
        start_time: Some(options.issue_time),
        ..TtlRequest::default()
    };
    let calculated =
        calculate_ttl(limits, ttl_request, req.now).map_err(|e| Error::invalid(e.to_string()))?;
    client
        .extend(&key.token_id, (calculated.ttl + EXPIRY_BUFFER).as_secs())
        .await
        .map_err(|e| {
            Error::litellm(format!("LiteLLM could not extend key {}", key.key_alias), e)
        })?;
    let Some(mut secret) = req.secret else {
        return Err(Error::invalid(NO_LEASE));
    };
    secret.lease = LeaseOptions {
        ttl: calculated.ttl,
        max_ttl: role.max_ttl(),
        renewable: true,
        ..options
    };
    // No warnings of our own: the host recalculates with the same inputs and warns itself.
    Ok(Some(Response {
        data: None,
        warnings: Vec::new(),
        secret: Some(secret),
    }))
}

async fn revoke(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let (key, _) = KeyLease::from_request(&req)?;
    let client = state.client(&req.storage).await?;
    match client
        .delete_keys(std::slice::from_ref(&key.token_id))
        .await
    {
        Ok(Deleted::Some) => tracing::debug!(key_alias = %key.key_alias, "revoked key"),
        // Already gone: expired and cleaned up, or deleted by an operator.
        Ok(Deleted::NoneFound) => {
            tracing::info!(key_alias = %key.key_alias, "key was already deleted in LiteLLM")
        }
        Err(e) => {
            let context = format!("LiteLLM could not delete key {}", key.key_alias);
            return Err(Error::litellm(context, e).noted(" (Vault will retry)".into()));
        }
    }
    // Only once LiteLLM confirmed: until then the index keeps the key visible to tidy.
    crate::engine::key_index::remove(&req.storage, &key.token_id).await?;
    Ok(None)
}

/// Undoes an issue that never reached its lease: deletes the key by alias, then its index entry.
pub async fn rollback(state: Arc<MountState>, req: Request, entry: WalEntry) -> Result<()> {
    let IssueWal {
        key_alias: alias,
        token_id,
    } = match entry.decode() {
        Ok(wal) => wal,
        Err(e) => {
            tracing::warn!(error = %e, "dropping an unreadable issue WAL entry");
            return Ok(());
        }
    };
    if alias.is_empty() {
        tracing::warn!("dropping WAL entry without a key alias");
        return Ok(());
    }
    if entry.age(req.now) > WAL_GIVE_UP_AGE {
        tracing::warn!(key_alias = %alias, "giving up rolling back a key after 24h; it may still exist in LiteLLM until it expires");
        return Ok(());
    }
    let client = state.client(&req.storage).await?;
    client
        .delete_aliases(std::slice::from_ref(&alias))
        .await
        .map_err(|e| Error::litellm(format!("LiteLLM could not roll back key {alias}"), e))?;
    // Issues index a key they chose before creating it; WAL entries of older versions and of
    // keys LiteLLM made carry no hash.
    if let Some(token_id) = token_id {
        crate::engine::key_index::remove(&req.storage, &token_id).await?;
    }
    tracing::info!(key_alias = %alias, "rolled back a key whose issue did not complete");
    Ok(())
}
