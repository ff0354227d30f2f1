//! Requests and responses: [`RawRequest`] as the host sends it, [`Request`] as a handler sees
//! it once routed and coerced, and the [`Response`] it answers.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{FieldData, LeaseSecret, Operation, Storage, SystemView};

/// A request as the host sent it, before routing.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    /// Request UUID (empty for internal requests such as renew and revoke).
    pub id: String,
    /// The wire name of the operation.
    pub operation: String,
    /// Path relative to the mount.
    pub path: String,
    /// The request body / query parameters.
    pub data: Map<String, Value>,
    /// The lease, for renew and revoke.
    pub secret: Option<LeaseSecret>,
    /// Mount path with a trailing slash, e.g. `litellm/`.
    pub mount_point: String,
    /// Display name of the caller's token.
    pub display_name: String,
    /// Identity entity of the caller (empty for root tokens).
    pub entity_id: String,
    /// The mount's UUID; the backend fills it in from `Setup` (see [`Request::backend_uuid`]).
    pub backend_uuid: String,
}

/// A routed request, as handlers see it.
pub struct Request {
    /// Request UUID (empty for internal requests).
    pub id: String,
    /// The operation, after the existence check turned writes into create or update.
    pub operation: Operation,
    /// Path relative to the mount.
    pub path: String,
    /// The coerced input: body fields and path captures.
    pub data: FieldData,
    /// The lease, for renew and revoke.
    pub secret: Option<LeaseSecret>,
    /// Mount path with a trailing slash, e.g. `litellm/`.
    pub mount_point: String,
    /// Display name of the caller's token.
    pub display_name: String,
    /// Identity entity of the caller (empty for root tokens).
    pub entity_id: String,
    /// This mount's UUID (Vault's `BackendUUID`, sent at `Setup`): unlike `mount_point` it
    /// tells apart mounts at the same path in two clusters, and survives a remount. Empty when
    /// the host sent none.
    pub backend_uuid: String,
    /// This mount's storage.
    pub storage: Storage,
    /// The host's system view (lease limits, identity).
    pub system: SystemView,
    /// When the request arrived, from the backend's [`Clock`](super::Clock): handlers read the time here.
    pub now: SystemTime,
}

impl Request {
    /// A request the host's periodic `rollback` tick stands for: no caller, no input; the
    /// mount as `tick` names it.
    pub fn internal(
        tick: &RawRequest,
        storage: &Storage,
        system: &SystemView,
        now: SystemTime,
    ) -> Request {
        let raw = RawRequest {
            mount_point: tick.mount_point.clone(),
            backend_uuid: tick.backend_uuid.clone(),
            ..RawRequest::default()
        };
        Request::new(
            Operation::Rollback,
            raw,
            FieldData::empty(),
            storage.clone(),
            system.clone(),
            now,
        )
    }

    /// A request for a handler, from the host's request and its coerced input.
    pub fn new(
        operation: Operation,
        raw: RawRequest,
        data: FieldData,
        storage: Storage,
        system: SystemView,
        now: SystemTime,
    ) -> Request {
        Request {
            id: raw.id,
            operation,
            path: raw.path,
            data,
            secret: raw.secret,
            mount_point: raw.mount_point,
            display_name: raw.display_name,
            entity_id: raw.entity_id,
            backend_uuid: raw.backend_uuid,
            storage,
            system,
            now,
        }
    }
}

/// What a handler answers.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The user-visible data (a JSON object), if any.
    pub data: Option<Value>,
    /// Warnings shown to the caller.
    pub warnings: Vec<String>,
    /// A lease to create (issue) or the renewed lease.
    pub secret: Option<LeaseSecret>,
}

impl Response {
    /// A response carrying `data`.
    pub fn data(data: Value) -> Response {
        Response {
            data: Some(data),
            ..Response::default()
        }
    }

    /// A list response (`{"keys": [...]}`).
    pub fn list(keys: Vec<String>) -> Response {
        Response::data(serde_json::json!({ "keys": keys }))
    }

    /// Adds a warning.
    pub fn warn(mut self, warning: impl Into<String>) -> Response {
        self.warnings.push(warning.into());
        self
    }
}
