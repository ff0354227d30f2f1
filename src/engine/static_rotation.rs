//! Rotating a static role's key on community LiteLLM, where `/key/regenerate` is
//! Enterprise-only: mint a successor, hand the stable alias over, keep the old key working for
//! the grace period, then delete it.
//!
//! One rotation, in order:
//! 1. A WAL entry holds the successor's secret and hash (the plugin chooses the secret), its
//!    temporary alias and the key it supersedes: written before LiteLLM changes anything.
//! 2. `/key/generate` makes the successor under the temporary alias.
//! 3. The superseded key is renamed to `<alias>-previous-<hex>` with its LiteLLM expiry at the
//!    end of the grace period (so it dies by itself), then the successor takes the alias.
//! 4. `static-keys/<name>` is stored (successor current, superseded previous), then the WAL
//!    entry goes. A previous key still in its grace period is superseded twice: deleted now.
//!
//! A plugin killed anywhere in between leaves the WAL entry. [`recover`] rolls it forward (the
//! successor exists: resume at step 3, which is idempotent) or drops it (the successor was never
//! made; the rotation stays due), so the role ends with exactly one current key under its alias.
//! A successor is never re-generated from the WAL's secret: LiteLLM would echo a live key's
//! request without applying it, and bring a deleted key back to life.
//!
//! Each key also expires in LiteLLM [`EXPIRY_MARGIN`] plus the grace period after its next
//! rotation was due, so a key Vault stopped rotating (mount gone, Vault down for good) dies.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::engine::client::{ChosenKey, Client, KeyStatus, duration_string};
use crate::engine::error::{Error, Result};
use crate::engine::key_owner::KeyOwner;
use crate::engine::layout;
use crate::engine::path_static_roles::StaticRole;
use crate::engine::schema;
use crate::engine::stamps::{self, Mount, Stamps};
use crate::engine::{alias, secret_key};
use crate::framework::{Storage, wal};

/// WAL kind of a rotation in flight.
pub const WAL_KIND: &str = "static_rotation";

/// How long after its rotation was due a key still works in LiteLLM (plus the grace period):
/// the time Vault has to rotate it before it dies by itself.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

/// A static role's keys: `static-keys/<name>`, seal-wrapped, the only place the secret lives.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticKeys {
    /// The key `static-creds` hands out.
    pub current: CurrentKey,
    /// The key it replaced, until its grace period ends.
    #[serde(default)]
    pub previous: Option<PreviousKey>,
    /// When Vault last rotated the key.
    pub last_vault_rotation: SystemTime,
    /// The mount path the keys are stamped with.
    pub mount: String,
}

/// The current key of a static role.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentKey {
    /// The secret.
    pub key: String,
    /// Its hash, LiteLLM's id for it.
    pub token_id: String,
    /// The stable alias.
    pub key_alias: String,
}

/// The key a rotation replaced, working until `delete_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousKey {
    /// Its hash.
    pub token_id: String,
    /// Its alias for the grace period.
    pub key_alias: String,
    /// When the grace period ends and the key is deleted.
    pub delete_at: SystemTime,
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys")
            .field("key", &"[redacted]")
            .field("token_id", &self.current.token_id)
            .field("key_alias", &self.current.key_alias)
            .field("previous", &self.previous)
            .field("last_vault_rotation", &self.last_vault_rotation)
            .finish()
    }
}

impl StaticKeys {
    /// The keys of static role `name`.
    pub async fn load(storage: &Storage, name: &str) -> Result<Option<StaticKeys>> {
        Ok(schema::load(storage, &layout::static_keys(name)).await?)
    }

    async fn store(&self, storage: &Storage, name: &str) -> Result<()> {
        Ok(schema::store(storage, &layout::static_keys(name), self, true).await?)
    }
}

/// The WAL payload of a rotation. Holds the successor's secret (as Vault's database engine
/// does); `wal/` is local storage.
#[derive(Clone, Serialize, Deserialize)]
pub struct RotationWal {
    /// The static role.
    pub role: String,
    /// The role's stable alias.
    pub key_alias: String,
    /// The successor's secret.
    pub key: String,
    /// The successor's hash.
    pub token_id: String,
    /// The successor's alias until it takes the stable one.
    pub temp_alias: String,
    /// The key losing the stable alias, if any.
    pub superseded: Option<Superseded>,
    /// The mount path the keys are stamped with.
    pub mount: String,
}

/// A key a rotation takes the stable alias from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Superseded {
    /// Its hash.
    pub token_id: String,
    /// Its expiry before the rotation, for an adopted key whose take-over is undone; `None`
    /// for a key Vault made, or one that never expires.
    pub expires: Option<SystemTime>,
}

/// One rotation of static role `name` (see the module doc).
pub struct Rotation<'a> {
    /// LiteLLM.
    pub client: &'a Client,
    /// The mount's storage.
    pub storage: &'a Storage,
    /// The static role's name.
    pub name: &'a str,
    /// Its settings.
    pub role: &'a StaticRole,
    /// Its keys before the rotation; `None` when it is being created.
    pub before: Option<&'a StaticKeys>,
    /// A key holding the alias that a new role adopts.
    pub adopted: Option<Superseded>,
    /// The mount path, stamped on the key.
    pub mount: &'a str,
    /// The request that rotates (empty for the schedule), stamped on the key.
    pub request_id: &'a str,
    /// Now.
    pub now: SystemTime,
}

impl Rotation<'_> {
    /// Rotates, returning the stored keys.
    pub async fn run(self) -> Result<StaticKeys> {
        let chosen = ChosenKey::random()
            .ok_or_else(|| Error::Unreadable("no random bytes for a new key".into()))?;
        let superseded = self.adopted.clone().or_else(|| {
            self.before.map(|k| Superseded {
                token_id: k.current.token_id.clone(),
                expires: None,
            })
        });
        let entry = RotationWal {
            role: self.name.to_string(),
            key_alias: self.role.key_alias.clone(),
            key: chosen.expose().to_string(),
            token_id: chosen.token(),
            temp_alias: alias::rotating(Some(&self.role.key_alias)),
            superseded,
            mount: self.mount.to_string(),
        };
        let wal_id = wal::put(self.storage, WAL_KIND, &entry, self.now).await?;
        let request = key_request(
            self.role,
            self.name,
            entry.temp_alias.clone(),
            Some(chosen),
            self.now,
            self.now,
            &Stamped {
                mount: self.mount,
                request_id: self.request_id,
            },
        );
        let generated = self
            .client
            .generate_with(&request, &self.role.key.key_settings)
            .await;
        match generated {
            Ok(key) if key.token == entry.token_id => {}
            Ok(key) => {
                // LiteLLM refuses chosen keys (disable_custom_api_keys): its key's secret was
                // never in the WAL, so it cannot be a static key.
                let _ = self.client.delete_keys(&[key.token]).await;
                wal::delete(self.storage, &wal_id).await?;
                return Err(Error::invalid(
                    "static roles need LiteLLM to accept keys chosen by Vault: unset general_settings.disable_custom_api_keys",
                ));
            }
            Err(e) => {
                let gone = !e.may_have_reached_server()
                    || self
                        .client
                        .delete_aliases(std::slice::from_ref(&entry.temp_alias))
                        .await
                        .is_ok();
                if gone {
                    wal::delete(self.storage, &wal_id).await?;
                }
                return Err(Error::litellm(
                    "LiteLLM could not make the static role's new key",
                    e,
                ));
            }
        }
        hand_over(
            self.client,
            self.storage,
            self.role,
            &entry,
            Some(&wal_id),
            self.before,
            self.now,
        )
        .await
    }
}

/// Steps 3 and 4 of a rotation whose successor exists (see the module doc). Idempotent.
async fn hand_over(
    client: &Client,
    storage: &Storage,
    role: &StaticRole,
    entry: &RotationWal,
    wal_id: Option<&str>,
    before: Option<&StaticKeys>,
    now: SystemTime,
) -> Result<StaticKeys> {
    let grace = role.grace_period();
    let previous = match &entry.superseded {
        Some(old) => {
            let key_alias = alias::previous(&role.key_alias);
            let fields = Map::from_iter([
                ("key_alias".to_string(), json!(key_alias)),
                (
                    "duration".to_string(),
                    json!(duration_string(
                        (grace + secret_key::EXPIRY_BUFFER).as_secs()
                    )),
                ),
            ]);
            match client.update_key(&old.token_id, fields).await {
                Ok(()) => Some(PreviousKey {
                    token_id: old.token_id.clone(),
                    key_alias,
                    delete_at: now + grace,
                }),
                // Deleted outside Vault: nothing to hand over from.
                Err(e) if e.is_not_found() => None,
                Err(e) => {
                    return Err(Error::litellm(
                        "LiteLLM could not retire the static role's old key (the rotation resumes at the next attempt)",
                        e,
                    ));
                }
            }
        }
        None => None,
    };
    client
        .set_alias(&entry.token_id, &role.key_alias)
        .await
        .map_err(|e| {
            Error::litellm(
                "LiteLLM could not give the static role's alias to its new key (the rotation resumes at the next attempt)",
                e,
            )
        })?;
    let keys = StaticKeys {
        current: CurrentKey {
            key: entry.key.clone(),
            token_id: entry.token_id.clone(),
            key_alias: role.key_alias.clone(),
        },
        previous,
        last_vault_rotation: now,
        mount: entry.mount.clone(),
    };
    keys.store(storage, &entry.role).await?;
    if let Some(older) = before.and_then(|k| k.previous.as_ref())
        && Some(&older.token_id) != keys.previous.as_ref().map(|p| &p.token_id)
        && let Err(e) = client
            .delete_keys(std::slice::from_ref(&older.token_id))
            .await
    {
        tracing::warn!(static_role = %entry.role, key_alias = %older.key_alias, error = %e, "could not delete a key superseded twice; it expires at the end of its grace period");
    }
    if let Some(id) = wal_id
        && let Err(e) = wal::delete(storage, id).await
    {
        tracing::warn!(static_role = %entry.role, error = %e, "could not drop a finished rotation's WAL entry; the next pass drops it");
    }
    Ok(keys)
}

/// Finishes or drops the rotation of WAL entry `wal_id` after the plugin lost track of it (see
/// the module doc). The caller holds the role's lock. `wal_id` is deleted when done (`None`:
/// the caller deletes the entry).
pub async fn recover(
    client: &Client,
    storage: &Storage,
    wal_id: Option<&str>,
    entry: &RotationWal,
    now: SystemTime,
) -> Result<()> {
    let keys = StaticKeys::load(storage, &entry.role).await?;
    if keys
        .as_ref()
        .is_some_and(|k| k.current.token_id == entry.token_id)
    {
        // Finished; only the WAL entry's delete was lost.
        if let Some(id) = wal_id {
            wal::delete(storage, id).await?;
        }
        return Ok(());
    }
    let role = StaticRole::load(storage, &entry.role).await?;
    let successor = client.info(&entry.token_id).await.map_err(|e| {
        Error::litellm("LiteLLM could not look up an interrupted rotation's key", e)
    })?;
    let exists = successor.is_some_and(|info| info.status == KeyStatus::Active);
    match role {
        Some(role) if exists => {
            hand_over(client, storage, &role, entry, wal_id, keys.as_ref(), now).await?;
            tracing::info!(static_role = %entry.role, "finished an interrupted rotation");
        }
        _ => {
            // Never made, or its role is gone (a create that failed, a delete meanwhile).
            if exists {
                client
                    .delete_keys(std::slice::from_ref(&entry.token_id))
                    .await
                    .map_err(|e| {
                        Error::litellm("LiteLLM could not delete an interrupted rotation's key", e)
                    })?;
            }
            if keys.is_none()
                && let Some(adopted) = &entry.superseded
            {
                restore_adopted(client, entry, adopted, now).await?;
            }
            if let Some(id) = wal_id {
                wal::delete(storage, id).await?;
            }
            tracing::info!(static_role = %entry.role, "dropped an interrupted rotation whose new key was not made");
        }
    }
    Ok(())
}

/// Gives an adopted key its alias and expiry back when the role that adopted it was never
/// stored. A key renamed already is found by hash; one never renamed is unchanged by this.
async fn restore_adopted(
    client: &Client,
    entry: &RotationWal,
    adopted: &Superseded,
    now: SystemTime,
) -> Result<()> {
    let mut fields = Map::from_iter([("key_alias".to_string(), json!(entry.key_alias))]);
    if let Some(expires) = adopted.expires {
        let left = expires.duration_since(now).unwrap_or_default().as_secs();
        fields.insert("duration".into(), json!(duration_string(left.max(1))));
    }
    match client.update_key(&adopted.token_id, fields).await {
        Err(e) if !e.is_not_found() => Err(Error::litellm(
            "LiteLLM could not give an adopted key its alias back",
            e,
        )),
        _ => Ok(()),
    }
}

/// Applies `role`'s settings to its current key at once (a role update), with the expiry its
/// next rotation calls for. The key's type is LiteLLM's to keep: it changes at the next
/// rotation.
pub async fn apply_settings(
    client: &Client,
    name: &str,
    role: &StaticRole,
    keys: &StaticKeys,
    now: SystemTime,
) -> Result<()> {
    let request = key_request(
        role,
        name,
        keys.current.key_alias.clone(),
        None,
        keys.last_vault_rotation,
        now,
        &Stamped {
            mount: &keys.mount,
            request_id: "",
        },
    );
    let Ok(Value::Object(mut fields)) = serde_json::to_value(&request) else {
        return Err(Error::Unreadable(
            "a key request does not encode as an object".into(),
        ));
    };
    fields.remove("key_type");
    for (name, value) in &role.key.key_settings {
        fields.entry(name.clone()).or_insert_with(|| value.clone());
    }
    client
        .update_key(&keys.current.token_id, fields)
        .await
        .map_err(|e| {
            Error::litellm(
                "LiteLLM could not apply the settings to the static role's key",
                e,
            )
        })
}

/// Deletes every key of a static role in LiteLLM.
pub async fn delete_all(client: &Client, keys: &StaticKeys) -> Result<()> {
    let mut tokens = vec![keys.current.token_id.clone()];
    tokens.extend(keys.previous.iter().map(|p| p.token_id.clone()));
    client
        .delete_keys(&tokens)
        .await
        .map(|_| ())
        .map_err(|e| Error::litellm("LiteLLM could not delete the static role's keys", e))
}

/// Deletes the previous key once its grace period is over, then forgets it.
pub async fn retire_previous(
    client: &Client,
    storage: &Storage,
    name: &str,
    keys: &StaticKeys,
) -> Result<()> {
    let Some(previous) = &keys.previous else {
        return Ok(());
    };
    client
        .delete_keys(std::slice::from_ref(&previous.token_id))
        .await
        .map_err(|e| {
            Error::litellm("LiteLLM could not delete the static role's previous key", e)
        })?;
    let remaining = StaticKeys {
        previous: None,
        ..keys.clone()
    };
    remaining.store(storage, name).await?;
    tracing::info!(static_role = %name, key_alias = %previous.key_alias, "deleted the previous key after its grace period");
    Ok(())
}

/// What a static key is stamped with besides its role.
struct Stamped<'a> {
    mount: &'a str,
    request_id: &'a str,
}

/// The `/key/generate` request of a static role's key, whose last rotation was at `rotated`.
fn key_request(
    role: &StaticRole,
    name: &str,
    key_alias: String,
    key: Option<ChosenKey>,
    rotated: SystemTime,
    now: SystemTime,
    stamped: &Stamped<'_>,
) -> crate::engine::client::GenerateKeyRequest {
    let next = role.rotation.next(rotated, now).time();
    let lifetime =
        next.duration_since(now).unwrap_or_default() + role.grace_period() + EXPIRY_MARGIN;
    let owner = KeyOwner {
        team_id: role.key.team_id.clone(),
        user_id: role.key.user_id.clone(),
    };
    let mut request = role.key.generate_request(
        key_alias,
        key,
        lifetime,
        owner,
        &Stamps {
            role: name,
            // Static keys are known by the token ids stored with their role, not by stamps
            // (tidy leaves them alone): the path says where they come from.
            mount: Mount {
                path: stamped.mount,
                uuid: "",
            },
            request_id: stamped.request_id,
            entity_id: "",
            display_name: "",
        },
    );
    request
        .metadata
        .insert(stamps::STATIC_ROLE.into(), Value::String(name.to_string()));
    request
}
