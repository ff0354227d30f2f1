//! `static-creds/<name>`: a static role's current key, without a lease, served from storage (no
//! LiteLLM call).
//!
//! The fields are what Vault's database engine returns for static credentials, which Vault
//! Agent / bao agent and the Vault Secrets Operator schedule by: `ttl` (whole seconds until the
//! next rotation, never negative), `last_vault_rotation`, and `rotation_period` (whole seconds)
//! or `rotation_schedule` (+ `rotation_window`). Agents re-read after `ttl` + 1 s only when
//! `rotation_period` is present. Nothing else in the answer changes between rotations: the
//! Secrets Operator takes any other changed field for a new secret and restarts workloads.

use std::sync::Arc;

use serde_json::json;

use crate::engine::MountState;
use crate::engine::error::{Error, Result};
use crate::engine::path_static_roles::rfc3339;
use crate::engine::{path_creds, path_roles};
use crate::framework::{Field, FieldType, Operation, Path, Request, Response, handler};

static FIELDS: &[Field] =
    &[Field::new("name", FieldType::String, "Name of the static role.").required()];

const SYNOPSIS: &str = "Read a static role's current LiteLLM key.";
const DESCRIPTION: &str = "\
Returns the static role's key, its alias and hash, when Vault last rotated it, its rotation
period or schedule, and ttl: the seconds until the next rotation. No lease: the key changes only
at rotations, and the previous one keeps working for the role's grace_period after each.";

/// The `static-creds/<name>` path.
pub fn path() -> Path<MountState> {
    Path::new("static-creds/{name}", FIELDS)
        .operation(Operation::Read, handler(read))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn read(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = path_roles::role_name(&req.data)?;
    let role = state.static_role(&req.storage, name).await?;
    let keys = state.static_keys(&req.storage, name).await?;
    let (Some(role), Some(keys)) = (role, keys) else {
        let missing = Error::NoSuchStaticRole(name.to_string());
        return Err(path_creds::missing_here(&req, missing).await);
    };
    let next = role.next_rotation(keys.last_vault_rotation, req.now);
    let ttl = next.duration_since(req.now).unwrap_or_default();
    // Rounded as Vault rounds it; a JSON integer, as agents require.
    let ttl_secs = (ttl.as_millis() + 500) / 1000;
    let mut data = json!({
        "key": keys.current.key,
        "key_alias": keys.current.key_alias,
        "token_id": keys.current.token_id,
        "last_vault_rotation": rfc3339(keys.last_vault_rotation),
        "ttl": u64::try_from(ttl_secs).unwrap_or(u64::MAX),
    });
    if let Some(data) = data.as_object_mut() {
        data.extend(role.rotation.to_json());
    }
    Ok(Some(Response::data(data)))
}
