//! `GET /v1/models` (and `/models`) and `GET /model/info`.
//!
//! Both list what the caller may use: everything for the master key, a virtual key's own
//! `models` otherwise (as the real proxy does on both routes). `/model/info` gives each
//! deployment as the real one does (`model_name`, `litellm_params.model`, `model_info.id`, and
//! `model_info.access_groups` only for a model in a group); the ~150 pricing fields of the
//! real answer are left out.

use super::super::*;

fn visible(shared: &Shared, caller: &Caller) -> Vec<(String, Vec<String>)> {
    let served = shared.served_models();
    match caller {
        Caller::Virtual(k) if !k.models.is_empty() => served
            .into_iter()
            .filter(|(m, _)| k.models.iter().any(|a| a == m))
            .collect(),
        _ => served,
    }
}

pub(crate) fn models(shared: &Shared, caller: &Caller) -> Reply {
    let data: Vec<Value> = visible(shared, caller)
        .iter()
        .map(|(id, _)| json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "openai"}))
        .collect();
    (StatusCode::OK, json!({"data": data, "object": "list"}))
}

pub(crate) fn model_info(shared: &Shared, caller: &Caller) -> Reply {
    let data: Vec<Value> = visible(shared, caller)
        .iter()
        .map(|(name, groups)| {
            let mut info = json!({
                "id": sha256_hex(name),
                "db_model": false,
                "access_via_team_ids": [],
                "direct_access": true,
                "key": format!("openai/{name}"),
                "mode": null,
            });
            if !groups.is_empty() {
                info["access_groups"] = json!(groups);
            }
            json!({
                "model_name": name,
                "litellm_params": {"api_base": "http://127.0.0.1:9/v1", "model": format!("openai/{name}")},
                "model_info": info,
            })
        })
        .collect();
    (StatusCode::OK, json!({"data": data}))
}
