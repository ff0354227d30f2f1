//! `path-help` texts and the OpenAPI document, generated from the path table.
//!
//! The host asks for help with `GET <mount>/<path>?help=1`, and for the whole mount's OpenAPI
//! document (with `requestResponsePrefix` set) when building `sys/internal/specs/openapi`. That
//! second request must never fail, or the host's whole OpenAPI endpoint fails; so nothing here
//! returns an error: an unknown path gets the root help.

use std::fmt::Write;

use serde_json::{Map, Value, json};

use super::field::Field;
use super::path::{Operation, Path, openapi_path};
use super::{Backend, RawRequest, Response};

/// Answers a `help` request.
pub(super) fn respond<S: Send + Sync + 'static>(
    backend: &Backend<S>,
    raw: &RawRequest,
) -> Response {
    let prefix = raw
        .data
        .get("requestResponsePrefix")
        .and_then(Value::as_str)
        .unwrap_or(env!("CARGO_PKG_NAME"));
    let matched = backend
        .paths
        .iter()
        .find(|p| p.matches(&raw.path).is_some());
    let (text, paths): (String, Vec<&Path<S>>) = match matched {
        Some(path) if !raw.path.is_empty() => (path_help(&raw.path, path), vec![path]),
        _ => (root_help(backend), backend.paths.iter().collect()),
    };
    Response::data(json!({
        "help": text,
        "see_also": Value::Null,
        "openapi": openapi_document(backend.help, prefix, &paths),
    }))
}

fn root_help<S>(backend: &Backend<S>) -> String {
    let mut text = format!("## DESCRIPTION\n\n{}\n\n## PATHS\n\n", backend.help.trim());
    text.push_str(
        "The following paths are supported by this backend. To view help for any of the paths\n\
         below, use the help command with any route matching the path pattern.\n\n",
    );
    for path in &backend.paths {
        let _ = writeln!(text, "    {}\n        {}\n", path.pattern, path.synopsis);
    }
    text
}

fn path_help<S>(request_path: &str, path: &Path<S>) -> String {
    let mut text = format!(
        "Request:        {request_path}\nMatching Route: {}\n\n{}\n\n## PARAMETERS\n\n",
        path.pattern, path.synopsis
    );
    for field in path.fields {
        let _ = writeln!(
            text,
            "    {} ({})\n        {}\n",
            field.name, field.kind, field.description
        );
    }
    let _ = write!(text, "## DESCRIPTION\n\n{}", path.description.trim());
    text
}

/// The OpenAPI 3 document for `paths`. Schema names carry `prefix` because the host merges all
/// mounts' components into one document.
fn openapi_document<S>(help: &str, prefix: &str, paths: &[&Path<S>]) -> Value {
    let mut doc_paths = Map::new();
    let mut schemas = Map::new();
    for path in paths {
        let (item, schema) = openapi_path_item(prefix, path);
        doc_paths.insert(openapi_path(path.pattern), item);
        if let Some((name, schema)) = schema {
            schemas.insert(name, schema);
        }
    }
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": env!("CARGO_PKG_NAME"),
            "description": help.trim(),
            "version": concat!("v", env!("CARGO_PKG_VERSION")),
            "license": { "name": env!("CARGO_PKG_LICENSE") },
        },
        "paths": doc_paths,
        "components": { "schemas": schemas },
    })
}

fn openapi_path_item<S>(prefix: &str, path: &Path<S>) -> (Value, Option<(String, Value)>) {
    let captures: Vec<&str> = path
        .pattern
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    let (path_fields, body_fields): (Vec<&Field>, Vec<&Field>) =
        path.fields.iter().partition(|f| captures.contains(&f.name));
    let parameters: Vec<Value> = path_fields
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "description": f.description,
                "in": "path",
                "required": true,
                "schema": { "type": "string" },
            })
        })
        .collect();

    let schema_name = format!("{}{}Request", camel(prefix), camel(path.pattern));
    let mut item = Map::new();
    item.insert("description".into(), json!(path.synopsis));
    item.insert("parameters".into(), json!(parameters));
    let ok = json!({ "200": { "description": "OK" } });
    let mut has_body = false;
    for (op, _) in &path.operations {
        let summary = json!(path.synopsis);
        match op {
            Operation::Read => {
                item.insert("get".into(), json!({ "summary": summary, "responses": ok }));
            }
            Operation::List => {
                item.insert(
                    "get".into(),
                    json!({
                        "summary": summary,
                        "parameters": [{
                            "name": "list", "in": "query", "required": true,
                            "description": "Must be set to `true`",
                            "schema": { "type": "string", "enum": ["true"] },
                        }],
                        "responses": ok,
                    }),
                );
            }
            Operation::Create | Operation::Update => {
                has_body = !body_fields.is_empty();
                let mut post = json!({ "summary": summary, "responses": ok });
                if has_body {
                    post["requestBody"] = json!({
                        "required": true,
                        "content": { "application/json": {
                            "schema": { "$ref": format!("#/components/schemas/{schema_name}") },
                        } },
                    });
                }
                item.insert("post".into(), post);
            }
            Operation::Delete => {
                item.insert("delete".into(), json!({ "summary": summary, "responses": { "204": { "description": "empty body" } } }));
            }
            _ => {}
        }
    }
    let schema = has_body.then(|| (schema_name, body_schema(&body_fields)));
    (Value::Object(item), schema)
}

fn body_schema(fields: &[&Field]) -> Value {
    let mut properties = Map::new();
    for field in fields {
        let (kind, format) = field.kind.openapi_type();
        let mut prop = json!({ "type": kind, "description": field.description });
        if let Some(format) = format {
            prop["format"] = json!(format);
        }
        if kind == "array" {
            prop["items"] = json!({ "type": "string" });
        }
        if let Some(default) = &field.default {
            prop["default"] = default.to_json();
        }
        if field.sensitive {
            prop["x-vault-displayAttrs"] = json!({ "sensitive": true });
        }
        properties.insert(field.name.to_string(), prop);
    }
    json!({ "type": "object", "properties": properties })
}

/// `vault-plugin-secrets-litellm` → `VaultPluginSecretsLitellm`; `roles/{name}` → `RolesName`.
fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names_are_schema_safe() {
        assert_eq!(
            camel("vault-plugin-secrets-litellm"),
            "VaultPluginSecretsLitellm"
        );
        assert_eq!(camel("roles/{name}"), "RolesName");
        assert_eq!(camel("config"), "Config");
    }
}
