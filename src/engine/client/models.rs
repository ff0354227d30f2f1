//! What the proxy serves: its model catalogue, so that a role's `models` can be checked and an
//! operator can see what to put in one.
//!
//! `GET /model/info` (admin) lists every deployment: `model_name` (what a key's `models` and a
//! call's `model` name, possibly a wildcard such as `openai/*`) and `model_info.access_groups`
//! (names a key's `models` may also hold, granting every model of the group). A proxy or key
//! without that route (404, or 401/403 for a key that may not call it) is asked
//! `GET /v1/models` instead, which lists names only.
//!
//! What a key's `models` may hold, as LiteLLM 1.108 checks it at call time
//! (`proxy/auth/auth_checks.py`, read, not all measured): a model name, an access group name,
//! a name a served wildcard covers (`openai/gpt-4o` under `openai/*`), a wildcard of its own
//! (`fake-*`; `*` matches any text), or one of the special names `all-proxy-models`,
//! `all-team-models` and `no-default-models`. LiteLLM itself accepts any string at
//! `/key/generate`: a key naming no served model can call nothing.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Map, Value};

use super::error::{ApiError, invalid};
use super::http::Retry;
use super::{Client, opt_string};

const OP_MODEL_INFO: &str = "/model/info";
const OP_MODELS: &str = "/v1/models";

/// Names a key's `models` may hold that are no model.
pub const SPECIAL_MODEL_NAMES: [&str; 3] =
    ["all-proxy-models", "all-team-models", "no-default-models"];

/// The proxy's model catalogue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    /// Model names as served (wildcards such as `openai/*` included), sorted, once each.
    pub models: BTreeSet<String>,
    /// Access group → the model names in it.
    pub access_groups: BTreeMap<String, BTreeSet<String>>,
    /// The route that answered: `/model/info` or `/v1/models` (no access groups then).
    pub source: &'static str,
}

impl Catalogue {
    /// Whether a key's `models` entry `name` lets the key call something this proxy serves.
    pub fn serves(&self, name: &str) -> bool {
        if SPECIAL_MODEL_NAMES.contains(&name)
            || self.models.contains(name)
            || self.access_groups.contains_key(name)
        {
            return true;
        }
        // A served wildcard covers the name, or the name is a wildcard covering a served model.
        self.models
            .iter()
            .any(|served| wildcard_match(served, name) || wildcard_match(name, served))
    }

    /// The entries of `models` this proxy does not serve, in their order.
    pub fn unknown<'a>(&self, models: &'a [String]) -> Vec<&'a str> {
        models
            .iter()
            .map(String::as_str)
            .filter(|m| !self.serves(m))
            .collect()
    }
}

/// Whether `pattern`, when it holds a `*` (any text, LiteLLM's `^…$` regex with `.*`), matches
/// `name` whole. A pattern without `*` matches nothing here (exact names are compared apart).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return false;
    }
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Client {
    /// The proxy's catalogue: `GET /model/info`, or `GET /v1/models` when that route is
    /// missing or closed to this key (404, 401, 403).
    pub async fn catalogue(&self) -> Result<Catalogue, ApiError> {
        match self.model_info().await {
            Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => {
                tracing::debug!(error = %e, "no /model/info; asking /v1/models");
                self.openai_models().await
            }
            other => other,
        }
    }

    async fn model_info(&self) -> Result<Catalogue, ApiError> {
        let data = self.get_data(OP_MODEL_INFO).await?;
        let mut catalogue = Catalogue {
            source: OP_MODEL_INFO,
            ..Catalogue::default()
        };
        for entry in data.iter().filter_map(Value::as_object) {
            let Some(name) = opt_string(entry, "model_name") else {
                continue;
            };
            let groups = entry
                .get("model_info")
                .and_then(|i| i.get("access_groups"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            for group in groups {
                catalogue
                    .access_groups
                    .entry(group.to_string())
                    .or_default()
                    .insert(name.clone());
            }
            catalogue.models.insert(name);
        }
        Ok(catalogue)
    }

    async fn openai_models(&self) -> Result<Catalogue, ApiError> {
        let data = self.get_data(OP_MODELS).await?;
        Ok(Catalogue {
            models: data
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|m| opt_string(m, "id"))
                .collect(),
            access_groups: BTreeMap::new(),
            source: OP_MODELS,
        })
    }

    /// The `data` list of a GET answer.
    async fn get_data(&self, op: &'static str) -> Result<Vec<Value>, ApiError> {
        let url = self.route(op)?;
        let rb = self.request(Method::GET, &url);
        let (status, body) = self.exchange(op, rb, Retry::Once).await?;
        let mut obj: Map<String, Value> = self.expect_success(op, status, &body)?;
        match obj.remove("data") {
            Some(Value::Array(data)) => Ok(data),
            _ => Err(invalid(op, "missing `data` list")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        Catalogue {
            models: ["fake-gpt", "fake-claude", "openai/*", "bedrock/us.*"]
                .map(String::from)
                .into(),
            access_groups: BTreeMap::from([(
                "beta".to_string(),
                BTreeSet::from(["fake-claude".to_string()]),
            )]),
            source: OP_MODEL_INFO,
        }
    }

    #[test]
    fn names_groups_wildcards_and_special_names_are_served() {
        let c = catalogue();
        for good in [
            "fake-gpt",
            "beta",
            "openai/gpt-4o",
            "openai/*",
            "bedrock/us.nova",
            "fake-*",
            "*",
            "*-claude",
            "all-proxy-models",
            "all-team-models",
        ] {
            assert!(c.serves(good), "{good} refused");
        }
        for bad in [
            "fake-gpt2",
            "gpt-4o",
            "bedrock/eu.nova",
            "Fake-GPT",
            "beta2",
            "x*",
        ] {
            assert!(!c.serves(bad), "{bad} accepted");
        }
        let asked = ["fake-gpt", "nope", "beta", "gpt-4o"].map(String::from);
        assert_eq!(c.unknown(&asked), ["nope", "gpt-4o"]);
    }

    #[test]
    fn wildcards_match_whole_names() {
        assert!(wildcard_match("a*", "a"));
        assert!(wildcard_match("a*c", "abc"));
        assert!(wildcard_match("*b*", "abc"));
        assert!(!wildcard_match("a*c", "abcd"));
        assert!(!wildcard_match("a*a", "a"));
        assert!(
            !wildcard_match("abc", "abc"),
            "exact names are compared apart"
        );
    }
}
