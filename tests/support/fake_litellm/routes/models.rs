//! `GET /v1/models` and `/models`.

use super::super::*;

pub(crate) fn models(caller: &Caller) -> Reply {
    let allowed: Vec<&str> = match caller {
        Caller::Virtual(k) if !k.models.is_empty() => FAKE_MODELS
            .iter()
            .copied()
            .filter(|m| k.models.iter().any(|a| a == m))
            .collect(),
        _ => FAKE_MODELS.to_vec(),
    };
    let data: Vec<Value> = allowed
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "openai"}))
        .collect();
    (StatusCode::OK, json!({"data": data, "object": "list"}))
}
