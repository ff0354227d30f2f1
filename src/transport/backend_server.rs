//! The `pb.Backend` service: one backend instance per mount (`multiplex_id`), and the
//! translation between wire messages and the framework's types.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use super::broker::{self, Broker};
use super::host_services::{HostStorage, HostSystemView, nanos};
use crate::framework::{
    self, ErrorKind, LeaseOptions, LeaseSecret, RawRequest, Storage, SystemView,
};
use crate::proto::pb;
use crate::proto::pb::backend_server::Backend as BackendRpc;

/// Builds a fresh backend for a new mount.
pub type Factory<S> = fn() -> framework::Backend<S>;

/// gRPC metadata key naming the mount connection a call belongs to.
const MULTIPLEX_ID: &str = "multiplex_id";

/// ProtoError types the host understands (Vault's `logical` error codes).
mod err_type {
    pub const UNKNOWN: u32 = 0;
    pub const CODED: u32 = 3;
    pub const UNSUPPORTED_OPERATION: u32 = 5;
    pub const UNSUPPORTED_PATH: u32 = 6;
}

/// A mounted backend and the host services of its mount.
struct Instance<S> {
    backend: framework::Backend<S>,
    storage: Storage,
    system: SystemView,
}

/// The `pb.Backend` service.
pub struct BackendService<S> {
    factory: Factory<S>,
    broker: Arc<Broker>,
    tls: Arc<rustls::ClientConfig>,
    instances: RwLock<HashMap<String, Arc<Instance<S>>>>,
}

impl<S: Send + Sync + 'static> BackendService<S> {
    /// A service with no mounts yet.
    pub fn new(factory: Factory<S>, broker: Arc<Broker>, tls: Arc<rustls::ClientConfig>) -> Self {
        BackendService {
            factory,
            broker,
            tls,
            instances: RwLock::default(),
        }
    }

    fn instance<T>(&self, request: &Request<T>) -> Result<Arc<Instance<S>>, Status> {
        let id = multiplex_id(request);
        self.instances
            .read()
            .ok()
            .and_then(|m| m.get(&id).cloned())
            .ok_or_else(|| {
                Status::failed_precondition(format!("no backend instance for multiplex id {id:?}"))
            })
    }
}

fn multiplex_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(MULTIPLEX_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Runs a handler future so that a panic in it fails only this request, with an error reply
/// instead of a reset stream. Caught in place: the request already has a task of its own.
async fn isolate<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(reason = %reason, "request handler panicked");
        "internal error: the plugin failed while handling this request".to_string()
    })
}

#[tonic::async_trait]
impl<S: Send + Sync + 'static> BackendRpc for BackendService<S> {
    async fn handle_request(
        &self,
        request: Request<pb::HandleRequestArgs>,
    ) -> Result<Response<pb::HandleRequestReply>, Status> {
        // OpenBao asks before every user request whether we rewrite its path; we never do.
        // Answered here, without a task or any parsing, because it doubles the request rate.
        if request
            .get_ref()
            .request
            .as_ref()
            .is_some_and(|r| r.operation == "resolve-path")
        {
            return Ok(Response::new(error_reply(
                &framework::Error::UnsupportedOperation,
            )));
        }
        let instance = self.instance(&request)?;
        let raw = match request.into_inner().request.map(raw_request).transpose() {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                return Ok(Response::new(error_reply(&framework::Error::bad_request(
                    "empty request",
                ))));
            }
            Err(e) => return Ok(Response::new(error_reply(&e))),
        };
        let outcome = isolate(async move {
            instance
                .backend
                .handle_request(raw, instance.storage.clone(), instance.system.clone())
                .await
        })
        .await
        .unwrap_or_else(|msg| Err(framework::Error::Internal(msg)));
        Ok(Response::new(match outcome {
            Ok(response) => pb::HandleRequestReply {
                response: response.map(pb_response),
                err: None,
            },
            Err(e) => error_reply(&e),
        }))
    }

    async fn special_paths(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::SpecialPathsReply>, Status> {
        let instance = self.instance(&request)?;
        let special = &instance.backend.special_paths;
        Ok(Response::new(pb::SpecialPathsReply {
            paths: Some(pb::Paths {
                root: special.root.clone(),
                unauthenticated: special.unauthenticated.clone(),
                local_storage: special.local_storage.clone(),
                seal_wrap_storage: special.seal_wrap_storage.clone(),
                ..pb::Paths::default()
            }),
        }))
    }

    async fn handle_existence_check(
        &self,
        request: Request<pb::HandleExistenceCheckArgs>,
    ) -> Result<Response<pb::HandleExistenceCheckReply>, Status> {
        let instance = self.instance(&request)?;
        let raw = match request.into_inner().request.map(raw_request).transpose() {
            Ok(Some(raw)) => raw,
            // Unreadable input: let the write itself report it.
            _ => return Ok(Response::new(pb::HandleExistenceCheckReply::default())),
        };
        let outcome = isolate(async move {
            instance
                .backend
                .existence_check(raw, instance.storage.clone(), instance.system.clone())
                .await
        })
        .await
        .unwrap_or_else(|msg| Err(framework::Error::Internal(msg)));
        Ok(Response::new(match outcome {
            Ok(found) => pb::HandleExistenceCheckReply {
                check_found: found.is_some(),
                exists: found.unwrap_or(false),
                err: None,
            },
            Err(e) => pb::HandleExistenceCheckReply {
                check_found: false,
                exists: false,
                err: Some(proto_error(&e)),
            },
        }))
    }

    async fn cleanup(&self, request: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        let id = multiplex_id(&request);
        if let Ok(mut instances) = self.instances.write() {
            instances.remove(&id);
        }
        tracing::debug!(multiplex_id = %id, "backend instance cleaned up");
        Ok(Response::new(pb::Empty {}))
    }

    async fn invalidate_key(
        &self,
        request: Request<pb::InvalidateKeyArgs>,
    ) -> Result<Response<pb::Empty>, Status> {
        let instance = self.instance(&request)?;
        instance.backend.invalidate_key(&request.into_inner().key);
        Ok(Response::new(pb::Empty {}))
    }

    async fn setup(
        &self,
        request: Request<pb::SetupArgs>,
    ) -> Result<Response<pb::SetupReply>, Status> {
        let id = multiplex_id(&request);
        let args = request.into_inner();
        let channel = match self.broker.conn_info(args.broker_id).await {
            Ok(info) => broker::dial(&info, self.tls.clone()).await,
            Err(e) => Err(e),
        };
        let channel = match channel {
            Ok(channel) => channel,
            Err(e) => {
                tracing::error!(error = %e, "setup failed");
                return Ok(Response::new(pb::SetupReply { err: e.to_string() }));
            }
        };
        let backend = (self.factory)();
        backend.setup(&args.backend_uuid);
        let instance = Instance {
            backend,
            storage: Storage::new(HostStorage::new(channel.clone())),
            system: SystemView::new(HostSystemView::new(channel)),
        };
        if let Ok(mut instances) = self.instances.write() {
            instances.insert(id.clone(), Arc::new(instance));
        }
        tracing::debug!(multiplex_id = %id, broker_id = args.broker_id, mount_type = ?args.config.get("plugin_name"), "backend instance set up");
        Ok(Response::new(pb::SetupReply { err: String::new() }))
    }

    async fn initialize(
        &self,
        request: Request<pb::InitializeArgs>,
    ) -> Result<Response<pb::InitializeReply>, Status> {
        let instance = self.instance(&request)?;
        // Storage is usable from here on (not during Setup).
        instance
            .backend
            .start(instance.storage.clone(), instance.system.clone());
        Ok(Response::new(pb::InitializeReply { err: None }))
    }

    async fn r#type(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::TypeReply>, Status> {
        // 1 = logical (a secrets engine).
        Ok(Response::new(pb::TypeReply { r#type: 1 }))
    }
}

/// Translates a wire request.
fn raw_request(req: pb::Request) -> Result<RawRequest, framework::Error> {
    Ok(RawRequest {
        id: req.id,
        operation: req.operation,
        path: req.path,
        data: json_object(&req.data)
            .ok_or_else(|| framework::Error::bad_request("request data must be a JSON object"))?,
        secret: req.secret.map(lease_secret),
        mount_point: req.mount_point,
        display_name: req.display_name,
        entity_id: req.entity_id,
        backend_uuid: String::new(),
    })
}

/// Parses host JSON text that should hold an object; "", "null" are empty.
fn json_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Some(map),
        Ok(Value::Null) => Some(Map::new()),
        Err(_) if text.trim().is_empty() => Some(Map::new()),
        _ => None,
    }
}

fn lease_secret(secret: pb::Secret) -> LeaseSecret {
    let options = secret.lease_options.unwrap_or_default();
    LeaseSecret {
        lease: LeaseOptions {
            ttl: nanos(options.ttl),
            max_ttl: nanos(options.max_ttl),
            renewable: options.renewable,
            increment: nanos(options.increment),
            issue_time: options
                .issue_time
                .and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or_else(SystemTime::now),
        },
        internal_data: json_object(&secret.internal_data).unwrap_or_default(),
        lease_id: secret.lease_id,
    }
}

fn go_duration(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn pb_response(response: framework::Response) -> pb::Response {
    pb::Response {
        // The host requires valid JSON here whenever a response is present.
        data: response
            .data
            .map(|d| d.to_string())
            .unwrap_or_else(|| "null".to_string()),
        warnings: response.warnings,
        secret: response.secret.map(|s| pb::Secret {
            lease_options: Some(pb::LeaseOptions {
                ttl: go_duration(s.lease.ttl),
                renewable: s.lease.renewable,
                increment: go_duration(s.lease.increment),
                issue_time: Some(s.lease.issue_time.into()),
                max_ttl: go_duration(s.lease.max_ttl),
            }),
            internal_data: Value::Object(s.internal_data).to_string(),
            lease_id: s.lease_id,
        }),
        ..pb::Response::default()
    }
}

fn proto_error(e: &framework::Error) -> pb::ProtoError {
    let (err_type, err_code) = match e.kind() {
        ErrorKind::UnsupportedPath => (err_type::UNSUPPORTED_PATH, 0),
        ErrorKind::UnsupportedOperation => (err_type::UNSUPPORTED_OPERATION, 0),
        ErrorKind::Coded(status) => (err_type::CODED, i64::from(status)),
        ErrorKind::Response | ErrorKind::Internal => (err_type::UNKNOWN, 0),
    };
    pb::ProtoError {
        err_type,
        err_msg: e.to_string(),
        err_code,
    }
}

/// Error responses become `{"error": …}` data (HTTP 400); the rest ProtoErrors. A coded error
/// must not come with an error response too: the host would answer 400.
fn error_reply(e: &framework::Error) -> pb::HandleRequestReply {
    match e.kind() {
        ErrorKind::Response => pb::HandleRequestReply {
            response: Some(pb::Response {
                data: serde_json::json!({ "error": e.to_string() }).to_string(),
                ..pb::Response::default()
            }),
            err: None,
        },
        _ => pb::HandleRequestReply {
            response: None,
            err: Some(proto_error(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_fails_only_its_request() {
        assert_eq!(isolate(async { 7 }).await, Ok(7));
        let fail = std::hint::black_box(true);
        let failed = isolate(async move {
            tokio::task::yield_now().await;
            if fail {
                panic!("boom");
            }
            9
        })
        .await;
        assert!(failed.is_err_and(|m| m.starts_with("internal error")));
        // The runtime, and the next request, carry on.
        assert_eq!(isolate(async { 8 }).await, Ok(8));
    }

    #[test]
    fn host_json_is_read_leniently_but_only_as_objects() {
        assert_eq!(json_object("null"), Some(Map::new()));
        assert_eq!(json_object(""), Some(Map::new()));
        assert_eq!(json_object(r#"{"a":1}"#).unwrap()["a"], 1);
        assert_eq!(json_object("[1]"), None);
        assert_eq!(json_object("{"), None);
    }

    #[test]
    fn errors_map_to_the_statuses_vault_expects() {
        let reply = error_reply(&framework::Error::bad_request("ttl is bad"));
        assert!(reply.err.is_none());
        assert_eq!(reply.response.unwrap().data, r#"{"error":"ttl is bad"}"#);
        assert_eq!(
            error_reply(&framework::Error::UnsupportedPath)
                .err
                .unwrap()
                .err_type,
            6
        );
        assert_eq!(
            error_reply(&framework::Error::UnsupportedOperation)
                .err
                .unwrap()
                .err_type,
            5
        );
        let internal = error_reply(&framework::Error::Internal("storage down".into()))
            .err
            .unwrap();
        assert_eq!(
            (internal.err_type, internal.err_msg.as_str()),
            (0, "storage down")
        );
        let upstream = error_reply(&framework::Error::Upstream {
            status: 504,
            message: "upstream timed out".into(),
        });
        assert!(upstream.response.is_none(), "no error response beside it");
        let coded = upstream.err.unwrap();
        assert_eq!(
            (coded.err_type, coded.err_code, coded.err_msg.as_str()),
            (3, 504, "upstream timed out")
        );
    }

    #[test]
    fn responses_always_carry_valid_json_and_an_issue_time() {
        let empty = pb_response(framework::Response::default().warn("w"));
        assert_eq!(empty.data, "null");
        let lease = LeaseOptions {
            ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(120),
            renewable: true,
            increment: Duration::ZERO,
            issue_time: SystemTime::now(),
        };
        let with_secret = pb_response(framework::Response {
            data: Some(serde_json::json!({"k": "v"})),
            warnings: vec![],
            secret: Some(LeaseSecret {
                lease,
                internal_data: Map::new(),
                lease_id: String::new(),
            }),
        });
        let secret = with_secret.secret.unwrap();
        assert_eq!(secret.internal_data, "{}");
        let options = secret.lease_options.unwrap();
        assert_eq!(options.ttl, 60_000_000_000);
        assert_eq!(options.max_ttl, 120_000_000_000);
        assert!(options.issue_time.is_some());
    }
}
