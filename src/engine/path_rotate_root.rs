//! `rotate-root`: replace the configured admin key with a successor that only Vault knows.
//!
//! This works when `config.master_key` is a LiteLLM *virtual* key of an admin user. LiteLLM's
//! own master key lives in the proxy's configuration, so no API call can replace it (and the
//! `/key/regenerate` route is Enterprise-only), so the rotation builds a successor instead:
//!
//! 1. `GET /key/info` with the current key reads its scope. No virtual key behind it (404)
//!    means it is the proxy's master key: refused with a 400.
//! 2. The successor is created with the same scope under a temporary alias. If that call
//!    fails after it may have reached LiteLLM, the alias is deleted at once.
//! 3. The successor must pass an authenticated admin call (`GET /key/list`), and the stored
//!    key must still be the one rotated (config writes do not wait for a rotation), before it
//!    is stored, seal-wrapped like every config write. On any failure up to here the successor
//!    is deleted and the config is unchanged.
//! 4. The old key is deleted by its hash, using the successor; then the successor takes the
//!    old alias. Neither can undo the rotation any more, so their failures become warnings
//!    that name the old key, so that the operator can finish by hand.
//!
//! A WAL entry naming the successor's temporary alias is written before the successor is
//! created: the request's first storage write, so an HA standby fails it and forwards the
//! rotation to the active node. It goes once the config holds the successor or the successor is
//! deleted. Should the plugin die in between, rollback deletes the keys with that alias except
//! the one the stored config names (a crash after the store must not delete the new admin key).

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::engine::MountState;
use crate::engine::alias;
use crate::engine::client::{
    Client, GenerateKeyRequest, GeneratedKey, OwnKey, duration_string, token_hash,
};
use crate::engine::error::{Error, Result};
use crate::engine::layout;
use crate::engine::path_config::Config;
use crate::engine::schema;
use crate::framework::{Field, Operation, Path, Request, Response, WalEntry, handler, wal};

static FIELDS: &[Field] = &[];

const SYNOPSIS: &str = "Replace the admin key in config with a new one that only Vault knows.";
const DESCRIPTION: &str = "\
Needs config.master_key to be a LiteLLM virtual key of a proxy_admin user; the proxy's own
master key cannot be rotated through LiteLLM's API and is refused. Creates a successor key with
the current key's user_id, team_id, models, key_type, allowed_routes, metadata, budget and
limits (no expiry unless the current key has one; then the same lifetime, counted from now),
checks that it can manage keys, stores it in config, then deletes the old key. The successor
takes the old key's alias. The response names the new key by alias and the first 12 hex digits
of its hash, never the key itself. If the old key cannot be deleted, the rotation still stands
and a warning names the old key, for deletion by hand. Requests in flight during a rotation
may fail once with the old key.";

/// Why a proxy master key is refused.
const MASTER_KEY_REFUSED: &str = "\
rotate-root refused: LiteLLM has no virtual key for config.master_key, so it is the proxy's \
master key, which lives in the proxy's own configuration and cannot be replaced through \
LiteLLM's API. Create a virtual key for a user with user_role=proxy_admin, write it to config \
as master_key, then rotate that.";

/// Hex digits of a key hash shown in responses, warnings and logs.
const TOKEN_PREFIX_LEN: usize = 12;

/// One rotation at a time in this plugin process: two concurrent ones would each store a
/// successor, and the one overwritten would live on in LiteLLM with nobody knowing it.
static ROTATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `rotate-root` path.
pub fn path() -> Path<MountState> {
    Path::new("rotate-root", FIELDS)
        .operation(Operation::Update, handler(rotate))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn rotate(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let _one_at_a_time = ROTATION.lock().await;
    let config = Config::load(&req.storage)
        .await?
        .ok_or(Error::NotConfigured)?;
    let current = client_for(&config)?;
    let own = current
        .self_info()
        .await
        .map_err(|e| Error::litellm("LiteLLM could not look up the configured key", e))?
        .ok_or_else(|| Error::invalid(MASTER_KEY_REFUSED))?;
    let old_alias = own.info.key_alias.clone();
    let temporary = alias::rotating(old_alias.as_deref());
    let (request, extra) = successor_request(&own, &temporary, req.now)?;
    let guard = SuccessorWal {
        key_alias: temporary.clone(),
    };
    let wal_id = wal::put(&req.storage, SUCCESSOR_WAL_KIND, &guard, req.now).await?;

    let successor = match current.generate_with(&request, &extra).await {
        Ok(successor) => successor,
        Err(e) => {
            // The key may exist although the answer was lost: delete it by its alias.
            let lost = e.may_have_reached_server()
                && current
                    .delete_aliases(std::slice::from_ref(&temporary))
                    .await
                    .is_err();
            let mut note = "; the configured key is unchanged".to_string();
            if lost {
                note.push_str(&format!(
                    "; a key with alias {temporary:?} may exist in LiteLLM: the periodic rollback deletes it"
                ));
            } else {
                release(&req, &wal_id).await;
            }
            return Err(
                Error::litellm("LiteLLM could not create the successor key", e).noted(note),
            );
        }
    };

    let mut next = config.clone();
    next.master_key = successor.key.clone();
    next.last_rotated = humantime::format_rfc3339_seconds(req.now).to_string();
    let discarded = Discard {
        current: &current,
        successor: &successor,
        alias: &temporary,
        req: &req,
        wal_id: &wal_id,
    };
    let next_client = match client_for(&next) {
        Ok(client) => client,
        Err(e) => return Err(discarded.because(e).await),
    };
    if let Err(e) = next_client.verify().await {
        let error = Error::litellm("the successor key failed its check against LiteLLM", e)
            .noted("; the configured key is unchanged".into());
        return Err(discarded.because(error).await);
    }
    match Config::load(&req.storage).await {
        Ok(Some(latest)) if latest.master_key == config.master_key => {}
        Ok(_) => {
            let error = Error::invalid(
                "config was written or deleted during the rotation; nothing was rotated",
            );
            return Err(discarded.because(error).await);
        }
        Err(e) => return Err(discarded.because(e).await),
    }
    if let Err(e) = schema::store(&req.storage, layout::CONFIG, &next, true).await {
        return Err(discarded.because(e.into()).await);
    }
    state.invalidate(layout::CONFIG);
    // The config names the successor now; rollback would keep it anyway.
    release(&req, &wal_id).await;

    // The successor is now the admin key. What follows only tidies up after the old one.
    let mut warnings = Vec::new();
    let old = describe_key(old_alias.as_deref(), &own.token);
    let old_deleted = match next_client
        .delete_keys(std::slice::from_ref(&own.token))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                old_key_alias = old_alias.as_deref().unwrap_or_default(),
                old_token_id_prefix = token_prefix(&own.token),
                error = %e,
                "rotate-root: deleting the previous admin key failed"
            );
            warnings.push(format!(
                "the new key is stored, but deleting the previous key {old} failed: {e}; \
                 delete that key in LiteLLM"
            ));
            false
        }
    };
    let mut alias = temporary.clone();
    // The old alias is free only once its key is gone (LiteLLM keeps aliases unique).
    if old_deleted && let Some(wanted) = old_alias.as_deref().map(alias::base) {
        match next_client.set_alias(&successor.token, wanted).await {
            Ok(()) => alias = wanted.to_string(),
            Err(e) => warnings.push(format!(
                "the new key keeps the temporary alias {temporary:?}: renaming it to {wanted:?} \
                 failed: {e}"
            )),
        }
    }

    let token_id_prefix = token_prefix(&successor.token);
    tracing::info!(
        key_alias = %alias,
        token_id_prefix,
        old_key_alias = old_alias.as_deref().unwrap_or_default(),
        old_token_id_prefix = token_prefix(&own.token),
        old_deleted,
        "rotated the LiteLLM admin key"
    );
    let mut response = Response::data(json!({
        "key_alias": alias,
        "token_id_prefix": token_id_prefix,
        "last_rotated": next.last_rotated,
        "expires": successor.expires,
    }));
    response.warnings = warnings;
    Ok(Some(response))
}

fn client_for(config: &Config) -> Result<Client> {
    Client::new(&config.client_config()).map_err(Error::StoredConfigUnusable)
}

/// A successor that will not be used, and how to take it back.
struct Discard<'a> {
    /// The still-configured key's client.
    current: &'a Client,
    successor: &'a GeneratedKey,
    alias: &'a str,
    req: &'a Request,
    wal_id: &'a str,
}

impl Discard<'_> {
    /// Deletes the successor and returns `error`, noting in it when that failed (the WAL entry
    /// then stays, and rollback deletes the successor later).
    async fn because(&self, error: Error) -> Error {
        let Err(e) = self
            .current
            .delete_keys(std::slice::from_ref(&self.successor.token))
            .await
        else {
            release(self.req, self.wal_id).await;
            return error;
        };
        let alias = self.alias;
        tracing::warn!(key_alias = %alias, error = %e, "rotate-root: deleting an unused successor key failed");
        error.noted(format!(
            "; deleting the unused successor key (alias {alias:?}) also failed ({e}): the periodic rollback deletes it"
        ))
    }
}

/// Drops the successor's WAL entry; best effort (rollback finds nothing to do for it).
async fn release(req: &Request, wal_id: &str) {
    if let Err(e) = wal::delete(&req.storage, wal_id).await {
        tracing::warn!(error = %e, "rotate-root: could not drop its WAL entry; rollback will");
    }
}

/// WAL kind guarding a successor between its creation and the config write.
pub const SUCCESSOR_WAL_KIND: &str = "litellm_successor";

/// The WAL payload of a rotation: the successor's temporary alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessorWal {
    /// The alias the successor carries until it takes the old key's.
    pub key_alias: String,
}

/// Undoes a rotation that died between creating its successor and storing it: deletes the
/// keys with the temporary alias, except the one the stored config names.
pub async fn rollback(state: &MountState, req: &Request, entry: &WalEntry) -> Result<()> {
    let SuccessorWal { key_alias } = match entry.decode() {
        Ok(wal) => wal,
        Err(e) => {
            tracing::warn!(error = %e, "dropping an unreadable rotate-root WAL entry");
            return Ok(());
        }
    };
    let configured = Config::load(&req.storage)
        .await?
        .map(|c| token_hash(&c.master_key));
    let client = state.client(&req.storage).await?;
    let listed = client
        .list_aliases(&key_alias)
        .await
        .map_err(|e| Error::litellm("LiteLLM could not list a rotation's successor keys", e))?;
    let unused: Vec<String> = listed
        .into_iter()
        .filter(|k| k.key_alias == key_alias && Some(&k.token) != configured.as_ref())
        .map(|k| k.token)
        .collect();
    if !unused.is_empty() {
        client
            .delete_keys(&unused)
            .await
            .map_err(|e| Error::litellm("LiteLLM could not delete an unused successor key", e))?;
        tracing::info!(key_alias = %key_alias, "rolled back the successor of a rotation that did not complete");
    }
    Ok(())
}

/// The generate request for a successor of `own` (and the fields [`GenerateKeyRequest`] does
/// not model): the same scope, so the rotation neither widens nor narrows what the admin key
/// may do.
fn successor_request(
    own: &OwnKey,
    alias: &str,
    now: SystemTime,
) -> Result<(GenerateKeyRequest, Map<String, Value>)> {
    let info = &own.info;
    let request = GenerateKeyRequest {
        // LiteLLM makes the successor's secret: nothing needs its hash before it exists.
        key: None,
        key_alias: alias.to_string(),
        duration: successor_lifetime(own, now)?.map(duration_string),
        models: info.models.clone(),
        max_budget: info.max_budget,
        budget_duration: info.budget_duration.clone(),
        tpm_limit: info.tpm_limit,
        rpm_limit: info.rpm_limit,
        max_parallel_requests: info.max_parallel_requests,
        team_id: info.team_id.clone(),
        user_id: info.user_id.clone(),
        metadata: info.metadata.clone(),
        key_type: info.key_type.clone(),
    };
    let mut extra = Map::new();
    // Without them the successor of a key limited to a few routes could call them all.
    if !own.allowed_routes.is_empty() {
        extra.insert("allowed_routes".into(), json!(own.allowed_routes));
    }
    Ok((request, extra))
}

/// Seconds the successor lives, `None` for never: the lifetime the current key was created
/// with (`created_at` to `expires`), so rotating an expiring key renews it the way creating
/// it did; the time it has left when its creation time is unknown.
fn successor_lifetime(own: &OwnKey, now: SystemTime) -> Result<Option<u64>> {
    let Some(expires_at) = own.info.expires_at else {
        return match &own.info.expires {
            // An expiry that cannot be read must not turn into a key that never expires.
            Some(expires) => Err(Error::LiteLlmAnswer(format!(
                "LiteLLM reports an expiry for the configured key that cannot be read \
                 ({expires:?}); refusing to create a successor"
            ))),
            None => Ok(None),
        };
    };
    let lifetime = own
        .created_at_time
        .and_then(|created| expires_at.duration_since(created).ok())
        .or_else(|| expires_at.duration_since(now).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::invalid(
                "the configured key has expired in LiteLLM; write a working key to config",
            )
        })?;
    Ok(Some(lifetime.as_secs().max(1)))
}

fn token_prefix(token: &str) -> &str {
    token.get(..TOKEN_PREFIX_LEN).unwrap_or(token)
}

/// How warnings and logs name a key: its alias and the start of its hash (never the key).
fn describe_key(alias: Option<&str>, token: &str) -> String {
    match alias {
        Some(alias) => format!("{alias:?} (token_id {}…)", token_prefix(token)),
        None => format!("without alias (token_id {}…)", token_prefix(token)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::client::{KeyInfo, KeyStatus, parse_timestamp};

    fn own_key(expires: Option<&str>, created_at: Option<&str>) -> OwnKey {
        let mut metadata = Map::new();
        metadata.insert("owner".into(), json!("platform"));
        OwnKey {
            token: "0123456789abcdef".repeat(4),
            info: KeyInfo {
                key_alias: Some("vault-admin".into()),
                expires: expires.map(String::from),
                expires_at: expires.and_then(parse_timestamp),
                status: KeyStatus::Active,
                models: vec!["fake-gpt".into()],
                metadata,
                max_budget: Some(10.0),
                budget_duration: Some("30d".into()),
                spend: Some(1.25),
                tpm_limit: Some(1000),
                rpm_limit: Some(60),
                max_parallel_requests: Some(4),
                team_id: Some("platform".into()),
                user_id: Some("vault-admin-user".into()),
                key_type: Some("management".into()),
                blocked: false,
                deleted_at: None,
            },
            allowed_routes: vec!["management_routes".into()],
            created_at: created_at.map(String::from),
            created_at_time: created_at.and_then(parse_timestamp),
        }
    }

    fn at(s: &str) -> SystemTime {
        parse_timestamp(s).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn successor_copies_the_scope() {
        let own = own_key(None, Some("2026-11-01T00:00:00Z"));
        let (req, extra) =
            successor_request(&own, "vault-admin-rotating-0123abcd", SystemTime::now())
                .expect("a successor request");
        assert_eq!(req.key_alias, "vault-admin-rotating-0123abcd");
        assert_eq!(
            req.duration, None,
            "no expiry when the current key has none"
        );
        assert_eq!(req.models, vec!["fake-gpt".to_string()]);
        assert_eq!(req.max_budget, Some(10.0));
        assert_eq!(req.budget_duration.as_deref(), Some("30d"));
        assert_eq!((req.tpm_limit, req.rpm_limit), (Some(1000), Some(60)));
        assert_eq!(req.max_parallel_requests, Some(4));
        assert_eq!(req.team_id.as_deref(), Some("platform"));
        assert_eq!(req.user_id.as_deref(), Some("vault-admin-user"));
        assert_eq!(req.key_type.as_deref(), Some("management"));
        assert_eq!(req.metadata.get("owner"), Some(&json!("platform")));
        assert_eq!(
            extra.get("allowed_routes"),
            Some(&json!(["management_routes"]))
        );
    }

    #[test]
    fn successor_of_an_expiring_key_gets_the_same_lifetime() {
        let now = at("2026-11-20T00:00:00Z");
        let own = own_key(
            Some("2026-12-01T00:00:00+00:00"),
            Some("2026-11-01T00:00:00Z"),
        );
        assert_eq!(
            successor_lifetime(&own, now).ok().flatten(),
            Some(30 * 86_400)
        );
        // Without a creation time: what is left.
        let own = own_key(Some("2026-12-01T00:00:00Z"), None);
        assert_eq!(
            successor_lifetime(&own, now).ok().flatten(),
            Some(11 * 86_400)
        );
        let (req, _) = successor_request(&own, "a", now).expect("a successor request");
        assert_eq!(req.duration.as_deref(), Some("950400s"));
    }

    #[test]
    fn unreadable_or_past_expiry_is_refused() {
        let now = at("2026-11-20T00:00:00Z");
        let own = own_key(Some("next tuesday"), None);
        assert!(matches!(
            successor_lifetime(&own, now),
            Err(Error::LiteLlmAnswer(_))
        ));
        let own = own_key(Some("2026-11-01T00:00:00Z"), None);
        assert!(matches!(
            successor_lifetime(&own, now),
            Err(Error::Invalid(_))
        ));
        let own = own_key(Some("2026-11-01T00:00:00Z"), Some("2026-11-01T00:00:00Z"));
        assert!(successor_lifetime(&own, now + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn keys_are_named_by_alias_and_hash_prefix() {
        let token = "0123456789abcdef".repeat(4);
        assert_eq!(
            describe_key(Some("vault-admin"), &token),
            "\"vault-admin\" (token_id 0123456789ab…)"
        );
        assert_eq!(
            describe_key(None, &token),
            "without alias (token_id 0123456789ab…)"
        );
        assert_eq!(token_prefix("abc"), "abc");
    }
}
