//! `rotate-role/<name>`: rotate a static role's key now, whatever its schedule; the next
//! rotation is counted from this one.

use std::sync::Arc;

use crate::engine::error::{Error, Result};
use crate::engine::path_roles;
use crate::engine::path_static_roles::StaticRole;
use crate::engine::static_rotation::{self, StaticKeys};
use crate::engine::{MountState, layout, static_schedule};
use crate::framework::{Field, FieldType, Operation, Path, Request, Response, handler};

static FIELDS: &[Field] =
    &[Field::new("name", FieldType::String, "Name of the static role.").required()];

const SYNOPSIS: &str = "Rotate a static role's key now.";
const DESCRIPTION: &str = "\
Makes a new key under the static role's alias at once. The previous key keeps working for the
role's grace_period and is then deleted. The next scheduled rotation is counted from this one.";

/// The `rotate-role/<name>` path.
pub fn path() -> Path<MountState> {
    Path::new("rotate-role/{name}", FIELDS)
        .operation(Operation::Update, handler(rotate))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn rotate(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = path_roles::role_name(&req.data)?.to_string();
    let lock = state.static_lock(&name);
    let _held = lock.lock().await;
    let role = StaticRole::load(&req.storage, &name).await?;
    let keys = StaticKeys::load(&req.storage, &name).await?;
    let Some(role) = role else {
        return Err(Error::NoSuchStaticRole(name));
    };
    let client = state.client(&req.storage).await?;
    let mount = keys
        .as_ref()
        .map_or(req.mount_point.clone(), |k| k.mount.clone());
    let rotated = static_rotation::Rotation {
        client: &client,
        storage: &req.storage,
        name: &name,
        role: &role,
        before: keys.as_ref(),
        adopted: None,
        mount: &mount,
        request_id: &req.id,
        now: req.now,
    }
    .run()
    .await;
    state.invalidate(&layout::static_keys(&name));
    match rotated {
        Ok(keys) => {
            state
                .rotations
                .schedule(&name, static_schedule::due_at(&role, &keys, req.now));
            tracing::info!(static_role = %name, "rotated a static role's key on request");
            Ok(None)
        }
        Err(e) => {
            state.rotations.failed(&name, req.now);
            Err(e.noted("; retries continue in the background, and it is safe to retry".into()))
        }
    }
}
