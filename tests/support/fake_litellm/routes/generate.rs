//! `POST /key/generate`.

use super::super::*;

/// Fields both generate and update validate like pydantic does (422 on wrong types).
pub(crate) struct KeyFields {
    pub(crate) key_alias: Option<Option<String>>,
    pub(crate) duration: Option<Option<String>>,
    pub(crate) models: Option<Vec<String>>,
    pub(crate) max_budget: Option<Option<f64>>,
    pub(crate) budget_duration: Option<Option<String>>,
    pub(crate) tpm_limit: Option<Option<i64>>,
    pub(crate) rpm_limit: Option<Option<i64>>,
    pub(crate) max_parallel_requests: Option<Option<i64>>,
    pub(crate) team_id: Option<Option<String>>,
    pub(crate) user_id: Option<Option<String>>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) key_type: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) blocked: Option<Option<bool>>,
}

pub(crate) fn parse_fields(obj: &Map<String, Value>) -> Result<KeyFields, Reply> {
    let mut errors = Vec::new();
    let mut string = |name: &str| -> Option<Option<String>> {
        match obj.get(name)? {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => {
                errors.push(validation(
                    "string_type",
                    &["body", name],
                    "Input should be a valid string",
                ));
                None
            }
        }
    };
    let key_alias = string("key_alias");
    let duration = string("duration");
    let budget_duration = string("budget_duration");
    let team_id = string("team_id");
    let user_id = string("user_id");
    let key = string("key").flatten();
    let key_type_raw = string("key_type");

    let models = match obj.get("models") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => errors.push(json!({"type": "string_type", "loc": ["body", "models", i], "msg": "Input should be a valid string"})),
                }
            }
            Some(out)
        }
        Some(_) => {
            errors.push(validation(
                "list_type",
                &["body", "models"],
                "Input should be a valid list",
            ));
            None
        }
    };
    let max_budget = match obj.get("max_budget") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => n.as_f64().map(Some),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) => Some(Some(v)),
            Err(_) => {
                errors.push(validation(
                    "float_parsing",
                    &["body", "max_budget"],
                    "Input should be a valid number, unable to parse string as a number",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(validation(
                "float_type",
                &["body", "max_budget"],
                "Input should be a valid number",
            ));
            None
        }
    };
    let mut int = |name: &str| -> Option<Option<i64>> {
        match obj.get(name)? {
            Value::Null => Some(None),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Some(Some(i)),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Some(f as i64)),
                _ => {
                    errors.push(validation(
                        "int_from_float",
                        &["body", name],
                        "Input should be a valid integer, got a number with a fractional part",
                    ));
                    None
                }
            },
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(Some(i)),
                Err(_) => {
                    errors.push(validation(
                        "int_parsing",
                        &["body", name],
                        "Input should be a valid integer, unable to parse string as an integer",
                    ));
                    None
                }
            },
            _ => {
                errors.push(validation(
                    "int_type",
                    &["body", name],
                    "Input should be a valid integer",
                ));
                None
            }
        }
    };
    let tpm_limit = int("tpm_limit");
    let rpm_limit = int("rpm_limit");
    let max_parallel_requests = int("max_parallel_requests");
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            errors.push(validation(
                "dict_type",
                &["body", "metadata"],
                "Input should be a valid dictionary",
            ));
            None
        }
    };
    let key_type = match key_type_raw.flatten() {
        None => None,
        Some(t) if ["llm_api", "management", "read_only", "default"].contains(&t.as_str()) => {
            Some(t)
        }
        Some(_) => {
            errors.push(validation(
                "enum",
                &["body", "key_type"],
                "Input should be 'llm_api', 'management', 'read_only' or 'default'",
            ));
            None
        }
    };
    let blocked = match obj.get("blocked") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Bool(b)) => Some(Some(*b)),
        Some(_) => {
            errors.push(validation(
                "bool_type",
                &["body", "blocked"],
                "Input should be a valid boolean",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        ));
    }
    Ok(KeyFields {
        key_alias,
        duration,
        models,
        max_budget,
        budget_duration,
        tpm_limit,
        rpm_limit,
        max_parallel_requests,
        team_id,
        user_id,
        metadata,
        key_type,
        key,
        blocked,
    })
}

/// Checks shared by generate and update that LiteLLM answers with 400.
pub(crate) fn check_budgets(f: &KeyFields) -> Result<(), Reply> {
    if let Some(Some(b)) = f.max_budget
        && (!b.is_finite() || b < 0.0)
    {
        return Err(dict_error(
            StatusCode::BAD_REQUEST,
            &format!("max_budget must be a non-negative finite number. Received: {b:?}"),
        ));
    }
    if let Some(Some(bd)) = &f.budget_duration
        && duration_seconds(bd, SystemTime::now()).is_err()
    {
        return Err(dict_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid budget_duration {}. Use a format like '1h', '24h', '7d', or '30d'.",
                py_repr(bd)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn duplicate_alias(alias: &str) -> Reply {
    (
        StatusCode::BAD_REQUEST,
        litellm_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Key with alias '{alias}' already exists. Unique key aliases across all keys are required."
            ),
            "bad_request_error",
            json!("key_alias"),
        ),
    )
}

pub(crate) fn generate(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let f = match parse_fields(obj) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    // Enterprise-only fields, checked in this order by the real proxy; empty lists pass.
    for field in ["guardrails", "tags", "allowed_passthrough_routes"] {
        if obj
            .get(field)
            .is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return (
                StatusCode::FORBIDDEN,
                litellm_error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "{{'error': 'This feature is only available for LiteLLM Enterprise users: {field}. You must be a LiteLLM Enterprise user to use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. \\nPricing: https://www.litellm.ai/#pricing'}}"
                    ),
                    "internal_server_error",
                    Value::Null,
                ),
            );
        }
    }
    // Only the log says why ("get_spend_routes permission is only available for LiteLLM
    // Enterprise users").
    if obj
        .get("permissions")
        .is_some_and(|p| p.get("get_spend_routes").is_some())
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            litellm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "{'error': 'Internal Server Error.'}",
                "internal_server_error",
                Value::Null,
            ),
        );
    }
    let mut extra = match extra_fields(obj, f.key_type.as_deref(), now) {
        Ok(extra) => extra,
        Err(reply) => return reply,
    };
    let mut metadata = f.metadata.clone().unwrap_or_default();
    if let Some(Value::Object(limits)) = extra.remove("metadata") {
        metadata.extend(limits);
    }
    if obj
        .get("model_max_budget")
        .is_some_and(|m| m.as_object().is_some_and(|m| !m.is_empty()))
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            litellm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Invalid model_max_budget: You must have an enterprise license to set model_max_budget. You must be a LiteLLM Enterprise user to use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. \nPricing: https://www.litellm.ai/#pricing. Example of valid model_max_budget: https://docs.litellm.ai/docs/proxy/users",
                "internal_server_error",
                Value::Null,
            ),
        );
    }
    if let Err(reply) = check_budgets(&f) {
        return reply;
    }
    if f.key.is_some() && shared.custom_keys_disabled.load(Ordering::Relaxed) {
        return dict_error(
            StatusCode::FORBIDDEN,
            "Custom API key values are disabled by your administrator. Keys must be auto-generated.",
        );
    }
    if let Some(key) = &f.key
        && !key.starts_with("sk-")
    {
        let chars: Vec<char> = key.chars().collect();
        let masked = if chars.len() > 8 {
            let head: String = chars.iter().take(4).collect();
            let tail: String = chars.iter().skip(chars.len() - 4).collect();
            format!("{head}****{tail}")
        } else {
            "****".to_owned()
        };
        return dict_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: {masked}"
            ),
        );
    }
    if f.key.as_ref().is_some_and(|k| k.chars().count() < 16) {
        return dict_error(
            StatusCode::BAD_REQUEST,
            "Invalid key format. LiteLLM Virtual Key must be at least 16 characters long.",
        );
    }
    // `expires` is computed from the exact time; the stored row keeps milliseconds.
    let expires_exact = match f.duration.clone().flatten() {
        None => None,
        Some(d) => match duration_seconds(&d, now) {
            Ok(secs) => Some(now + Duration::from_secs(secs)),
            Err(message) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    litellm_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &message,
                        "internal_server_error",
                        Value::Null,
                    ),
                );
            }
        },
    };
    let key = f.key.clone().unwrap_or_else(new_key);
    let token = sha256_hex(&key);
    let key_alias = f.key_alias.clone().flatten();
    let key_type = f.key_type.clone().unwrap_or_else(|| "default".to_owned());
    let stored_now = to_millis(now);

    let record = {
        let mut db = shared.db();
        if let Some(alias) = &key_alias
            && db.alias_taken(alias, None)
        {
            return duplicate_alias(alias);
        }
        db.seq += 1;
        let record = KeyRecord {
            token: token.clone(),
            key_name: key_name(&key),
            key_alias: key_alias.clone(),
            models: f.models.clone().unwrap_or_default(),
            max_budget: f.max_budget.flatten(),
            budget_duration: f.budget_duration.clone().flatten(),
            tpm_limit: f.tpm_limit.flatten(),
            rpm_limit: f.rpm_limit.flatten(),
            max_parallel_requests: f.max_parallel_requests.flatten(),
            team_id: f.team_id.clone().flatten(),
            user_id: f.user_id.clone().flatten(),
            metadata,
            key_type,
            expires: expires_exact.map(to_millis),
            blocked: f.blocked.flatten(),
            spend: 0.0,
            created_at: stored_now,
            updated_at: stored_now,
            deleted_at: None,
            extra,
            seq: db.seq,
        };
        // The real proxy upserts with an empty update: the same secret again leaves the
        // existing row as it was, yet answers 200 with the request echoed.
        if !db.live.contains_key(&token) {
            db.insert(record.clone());
        }
        record
    };

    let mut out = row_json(&record, TimeStyle::Z);
    out.insert("key".into(), json!(key));
    out.insert("token".into(), json!(token));
    out.insert("token_id".into(), json!(token));
    out.insert("duration".into(), Value::Null);
    out.insert("expires".into(), json!(expires_exact.map(fmt_z)));
    out.insert("created_by".into(), json!("default_user_id"));
    out.insert("updated_by".into(), json!("default_user_id"));
    for field in ["litellm_budget_table", "budget_id"] {
        out.entry(field).or_insert(Value::Null);
    }
    (StatusCode::OK, Value::Object(out))
}

/// The further fields the fake keeps and shows, as the real proxy does: `aliases`,
/// `allowed_routes` (replaced by the key type's routes unless `key_type` is `default`),
/// `model_rpm_limit`/`model_tpm_limit` (into `metadata`), `soft_budget` (a budget row), and
/// `object_permission` (a row of its own). Wrong types are 422s, as pydantic answers.
fn extra_fields(
    obj: &Map<String, Value>,
    key_type: Option<&str>,
    now: SystemTime,
) -> Result<Map<String, Value>, Reply> {
    let mut errors = Vec::new();
    let mut extra = Map::new();
    let mut in_metadata = Map::new();
    for (field, want) in [
        ("aliases", "dict"),
        ("model_rpm_limit", "dict"),
        ("model_tpm_limit", "dict"),
        ("object_permission", "dict"),
        ("allowed_routes", "list"),
        ("soft_budget", "float"),
    ] {
        let value = match obj.get(field) {
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        let ok = match want {
            "dict" => value.is_object(),
            "list" => value.is_array(),
            _ => value.is_number(),
        };
        if !ok {
            let (kind, msg) = match want {
                "dict" => ("dict_type", "Input should be a valid dictionary"),
                "list" => ("list_type", "Input should be a valid list"),
                _ => (
                    "float_parsing",
                    "Input should be a valid number, unable to parse string as a number",
                ),
            };
            errors.push(validation(kind, &["body", field], msg));
            continue;
        }
        match field {
            "model_rpm_limit" | "model_tpm_limit" => {
                in_metadata.insert(field.into(), value.clone());
            }
            "allowed_routes" if key_type.unwrap_or("default") != "default" => {}
            "soft_budget" => {
                let budget_id = sha256_hex(&format!("{value}{now:?}"));
                extra.insert("budget_id".into(), json!(budget_id));
                extra.insert(
                    "litellm_budget_table".into(),
                    json!({"budget_id": budget_id, "soft_budget": value, "max_budget": null}),
                );
            }
            "object_permission" => {
                extra.insert(
                    "object_permission_id".into(),
                    json!(sha256_hex(&value.to_string())),
                );
            }
            _ => {
                extra.insert(field.into(), value.clone());
            }
        }
    }
    if !errors.is_empty() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        ));
    }
    if !in_metadata.is_empty() {
        extra.insert("metadata".into(), Value::Object(in_metadata));
    }
    Ok(extra)
}
