//! `POST /team/new`, `/team/update`, `/team/delete`, `/team/member_add` and `GET /team/info`:
//! the parts of LiteLLM's team API the plugin uses, with LiteLLM 1.108's answers (not an
//! upsert on create, `Team not found` 404s, `team_member_already_in_team`, keys deleted with
//! their team). Spend stays 0: the fake serves no completions.

use super::super::*;

/// The limits a team can carry, as `/team/new` and `/team/update` take them.
const LIMITS: [&str; 9] = [
    "models",
    "max_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "team_member_budget",
    "team_member_budget_duration",
    "team_member_rpm_limit",
    "team_member_tpm_limit",
];

pub(crate) fn team_new(shared: &Shared, obj: &Map<String, Value>) -> Reply {
    let Some(team_id) = obj.get("team_id").and_then(Value::as_str) else {
        return dict_error(StatusCode::BAD_REQUEST, "team_id is required by this fake");
    };
    for field in ["budget_duration", "team_member_budget_duration"] {
        if let Some(window) = obj.get(field).and_then(Value::as_str)
            && duration_seconds(window, SystemTime::now()).is_err()
        {
            return (
                StatusCode::BAD_REQUEST,
                litellm_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{{'error': \"Invalid budget_duration '{window}'. Use a format like '1h', '24h', '7d', or '30d'.\"}}"
                    ),
                    "internal_server_error",
                    Value::Null,
                ),
            );
        }
    }
    let mut db = shared.db();
    if db.teams.contains_key(team_id) {
        return dict_error(
            StatusCode::BAD_REQUEST,
            &format!("Team id = {team_id} already exists. Please use a different team id."),
        );
    }
    let mut team = TeamRecord {
        team_id: team_id.to_owned(),
        team_alias: obj
            .get("team_alias")
            .and_then(Value::as_str)
            .map(str::to_owned),
        metadata: obj
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        ..TeamRecord::default()
    };
    set_limits(&mut team, obj);
    let answer = team.to_json();
    db.teams.insert(team_id.to_owned(), team);
    (StatusCode::OK, answer)
}

pub(crate) fn team_update(shared: &Shared, obj: &Map<String, Value>) -> Reply {
    let team_id = obj
        .get("team_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut db = shared.db();
    let Some(team) = db.teams.get_mut(team_id) else {
        return dict_error(
            StatusCode::NOT_FOUND,
            &format!("Team not found, passed team_id={team_id}"),
        );
    };
    set_limits(team, obj);
    if let Some(Value::Object(metadata)) = obj.get("metadata") {
        team.metadata = metadata.clone();
    }
    (
        StatusCode::OK,
        json!({"team_id": team_id, "data": team.to_json()}),
    )
}

pub(crate) fn team_delete(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let ids: Vec<String> = obj
        .get("team_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut db = shared.db();
    if let Some(missing) = ids.iter().find(|id| !db.teams.contains_key(*id)) {
        return (
            StatusCode::NOT_FOUND,
            json!({"detail": {"error": format!("Team not found, passed team_id={missing}")}}),
        );
    }
    let deleted_at = to_millis(now);
    for id in &ids {
        db.teams.remove(id);
        // LiteLLM archives the team's keys with it.
        let tokens: Vec<String> = db
            .live
            .values()
            .filter(|k| k.team_id.as_deref() == Some(id.as_str()))
            .map(|k| k.token.clone())
            .collect();
        for token in tokens {
            if let Some(mut record) = db.remove(&token) {
                record.deleted_at = Some(deleted_at);
                record.updated_at = deleted_at;
                db.deleted.insert(token, record);
            }
        }
    }
    (StatusCode::OK, json!({"deleted_teams": ids}))
}

pub(crate) fn member_add(shared: &Shared, obj: &Map<String, Value>) -> Reply {
    let team_id = obj
        .get("team_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let users: Vec<String> = match obj.get("member") {
        Some(Value::Array(members)) => members
            .iter()
            .filter_map(|m| m.get("user_id").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        Some(member) => member
            .get("user_id")
            .and_then(Value::as_str)
            .map(|u| vec![u.to_owned()])
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut db = shared.db();
    let Some(team) = db.teams.get_mut(team_id) else {
        return (
            StatusCode::NOT_FOUND,
            json!({"detail": {"error": format!("Team doesn't exist in db. Team={team_id}. Create team via `/team/new` call.")}}),
        );
    };
    if users.iter().all(|u| team.members.contains(u)) {
        return (
            StatusCode::BAD_REQUEST,
            litellm_error(
                StatusCode::BAD_REQUEST,
                "All users are already in team. Existing members=[]",
                "team_member_already_in_team",
                json!("member"),
            ),
        );
    }
    team.members.extend(users);
    (StatusCode::OK, team.to_json())
}

pub(crate) fn team_info(shared: &Shared, query: &HashMap<String, String>) -> Reply {
    let team_id = query.get("team_id").map(String::as_str).unwrap_or_default();
    let db = shared.db();
    let Some(team) = db.teams.get(team_id) else {
        return (
            StatusCode::NOT_FOUND,
            litellm_error(
                StatusCode::NOT_FOUND,
                &format!("{{'message': 'Team not found, passed team id: {team_id}.'}}"),
                "auth_error",
                json!("None"),
            ),
        );
    };
    let keys: Vec<Value> = db
        .live
        .values()
        .filter(|k| k.team_id.as_deref() == Some(team_id))
        .map(|k| json!({"token": k.token, "key_alias": k.key_alias, "expires": k.expires.map(py_datetime)}))
        .collect();
    let member_budget = team
        .limits
        .get("team_member_budget")
        .cloned()
        .unwrap_or(Value::Null);
    let memberships: Vec<Value> = std::iter::once("default_user_id")
        .chain(team.members.iter().map(String::as_str))
        .map(|user| {
            json!({"user_id": user, "team_id": team_id, "spend": 0.0,
                   "litellm_budget_table": {"max_budget": member_budget}})
        })
        .collect();
    (
        StatusCode::OK,
        json!({"team_id": team_id, "team_info": team.to_json(), "keys": keys, "team_memberships": memberships}),
    )
}

fn set_limits(team: &mut TeamRecord, obj: &Map<String, Value>) {
    for name in LIMITS {
        if let Some(value) = obj.get(name) {
            team.limits.insert(name.to_owned(), value.clone());
        }
    }
}
