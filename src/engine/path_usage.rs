//! `usage/<name>`: what a role's keys have spent together, and each user under it, as LiteLLM
//! reports it for the team the role owns. Only roles with `role_*` or `user_*` limits own one;
//! the spend of a single key is on the key.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::engine::MountState;
use crate::engine::error::{Error, Result};
use crate::engine::path_roles;
use crate::framework::{Field, FieldType, Operation, Path, Request, Response, handler};

static FIELDS: &[Field] = &[Field::new("name", FieldType::String, "Name of the role.").required()];

const SYNOPSIS: &str = "Show what a role's keys have spent together.";
const DESCRIPTION: &str = "\
For a role with role-wide or per-user limits: the spend of the LiteLLM team the role owns, its
budget and next reset, its rate limits, and each member's spend and budget. LiteLLM writes spend
to its database 10-15 s after the calls (enforcement does not wait for that), and resets budgets
on calendar boundaries (1d at 00:00 UTC, 1mo on the 1st) within about 10 minutes.";

/// The `usage/<name>` path.
pub fn path() -> Path<MountState> {
    Path::new("usage/{name}", FIELDS)
        .operation(Operation::Read, handler(read))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn read(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = path_roles::role_name(&req.data)?;
    let role = state
        .role(&req.storage, name)
        .await?
        .ok_or_else(|| Error::NoSuchRole(name.to_string()))?;
    let Some(team_id) = role.team.as_deref() else {
        return Err(Error::invalid(format!(
            "role {name:?} sets no role_* or user_* limits, so no LiteLLM team counts its keys together (each key's spend is on the key)"
        )));
    };
    let client = state.client(&req.storage).await?;
    let usage = client
        .team_usage(team_id, req.now)
        .await
        .map_err(|e| Error::litellm("LiteLLM could not report the role's spend", e))?
        .ok_or_else(|| {
            Error::LiteLlmAnswer(format!(
                "LiteLLM has no team {team_id:?}, which role {name:?} owns: it was deleted in LiteLLM"
            ))
        })?;
    let limits = &role.limits;
    let members: Vec<Value> = usage
        .members
        .iter()
        .map(|m| json!({"user_id": m.user_id, "spend": m.spend, "max_budget": m.max_budget}))
        .collect();
    Ok(Some(Response::data(json!({
        "role_team_id": team_id,
        "spend": usage.spend,
        "max_budget": usage.max_budget,
        "budget_duration": limits.role_budget_duration,
        "budget_reset_at": usage.budget_reset_at,
        "rpm_limit": limits.role_rpm_limit,
        "tpm_limit": limits.role_tpm_limit,
        "live_keys": usage.live_keys,
        "members": members,
    }))))
}
