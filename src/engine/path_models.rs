//! `models` (and `models/`): what the LiteLLM proxy serves, so an operator can see what to put
//! in a role's `models`; and the check a role write makes of them.
//!
//! The catalogue is LiteLLM's `GET /model/info` (model names, wildcards such as `openai/*`,
//! and model access groups), or `GET /v1/models` (names only) where that route is closed
//! (see [`Catalogue`]). LiteLLM itself accepts any name in a key's `models`: a key naming
//! nothing the proxy serves can call nothing, so a role write refuses such names.

use std::sync::Arc;

use serde_json::json;

use crate::engine::MountState;
use crate::engine::client::{Catalogue, Client, SPECIAL_MODEL_NAMES};
use crate::engine::error::{Error, Result};
use crate::framework::{Field, Operation, Path, Request, Response, handler};

static FIELDS: &[Field] = &[];

/// How many served names an error message lists at most.
const MAX_LISTED: usize = 20;

const SYNOPSIS: &str = "List the models the LiteLLM proxy serves.";
const DESCRIPTION: &str = "\
Reads the proxy's catalogue (LiteLLM's /model/info, or /v1/models where that is closed):
models lists the model names a role's models may hold (wildcard deployments such as openai/*
included: a role may then name any model they cover), access_groups the model access groups
with their models (a role may name a group), special the names LiteLLM gives a meaning of its
own, and source the route that answered. A role write refuses models the proxy does not serve,
unless written with verify=false.";

/// The `models` and `models/` paths.
pub fn paths() -> Vec<Path<MountState>> {
    ["models", "models/"]
        .into_iter()
        .map(|pattern| {
            Path::new(pattern, FIELDS)
                .operation(Operation::Read, handler(read))
                .help(SYNOPSIS, DESCRIPTION)
        })
        .collect()
}

async fn read(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let client = state.client(&req.storage).await?;
    let catalogue = fetch(&client).await?;
    Ok(Some(Response::data(json!({
        "models": catalogue.models,
        "access_groups": catalogue.access_groups,
        "special": SPECIAL_MODEL_NAMES,
        "source": catalogue.source,
    }))))
}

async fn fetch(client: &Client) -> Result<Catalogue> {
    client
        .catalogue()
        .await
        .map_err(|e| Error::litellm("LiteLLM could not list its models", e))
}

/// Refuses `models` the proxy does not serve, with a 400 naming them. A configured key that
/// may not read the catalogue (an admin key limited to the key routes, as rotate-root's
/// successors often are) leaves the models unchecked: the answer is a warning saying so.
pub async fn check(client: &Client, models: &[String]) -> Result<Option<String>> {
    let catalogue = match client.catalogue().await {
        Ok(catalogue) => catalogue,
        Err(e) if matches!(e.status(), Some(401 | 403)) => {
            return Ok(Some(format!(
                "the role's models were not checked: the configured key may not read LiteLLM's model catalogue ({e})"
            )));
        }
        Err(e) => {
            return Err(Error::litellm("LiteLLM could not list its models", e).noted(
                "; the role's models could not be checked: write verify=false to skip the check"
                    .into(),
            ));
        }
    };
    let unknown = catalogue.unknown(models);
    if unknown.is_empty() {
        return Ok(None);
    }
    let mut served: Vec<&str> = catalogue
        .models
        .iter()
        .chain(catalogue.access_groups.keys())
        .map(String::as_str)
        .collect();
    let more = served.len().saturating_sub(MAX_LISTED);
    served.truncate(MAX_LISTED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Err(Error::invalid(format!(
        "models: the LiteLLM proxy does not serve {} (it serves {}{more}; read the models path for the catalogue, or write verify=false to skip the check)",
        unknown
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        served.join(", "),
    )))
}
