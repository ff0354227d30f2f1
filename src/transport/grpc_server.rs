//! The plugin's gRPC server: hyper's HTTP/2 server on each accepted connection, each request
//! routed by its service name to one of the generated tonic services.
//!
//! tonic's own `transport::Server` would do the same behind an axum router and a stack of
//! tower layers (timeouts, connect info, error recovery) that none of our services need; per
//! request they cost the plugin 3–4 % of its CPU (alternating scripts/bench.sh runs). What stays is
//! what a gRPC server needs: HTTP/2 from hyper, the messages' codec from tonic. A request for
//! a service we do not serve gets gRPC's UNIMPLEMENTED, as from tonic's router.

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tower::Service;

use super::backend_server::BackendService;
use super::broker::BrokerService;
use super::services::{Controller, Multiplexing, Stdio, Version};
use crate::proto::logical::plugin_version_server::PluginVersionServer;
use crate::proto::pb::backend_server::BackendServer;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;
use crate::proto::pluginutil::multiplexing::plugin_multiplexing_server::PluginMultiplexingServer;

/// gRPC health checking, which go-plugin's host may call.
pub type HealthServer =
    tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;

/// Every service the plugin serves to its host, routed by name.
pub struct Routes<S: Send + Sync + 'static> {
    pub backend: BackendServer<BackendService<S>>,
    pub broker: GrpcBrokerServer<BrokerService>,
    pub controller: GrpcControllerServer<Controller>,
    pub stdio: GrpcStdioServer<Stdio>,
    pub version: PluginVersionServer<Version>,
    pub multiplexing: PluginMultiplexingServer<Multiplexing>,
    pub health: HealthServer,
}

// Not derived: that would ask `S: Clone`, which the services do not need.
impl<S: Send + Sync + 'static> Clone for Routes<S> {
    fn clone(&self) -> Self {
        Routes {
            backend: self.backend.clone(),
            broker: self.broker.clone(),
            controller: self.controller.clone(),
            stdio: self.stdio.clone(),
            version: self.version.clone(),
            multiplexing: self.multiplexing.clone(),
            health: self.health.clone(),
        }
    }
}

impl<S: Send + Sync + 'static> Routes<S> {
    /// Serves one connection until the host closes it.
    pub async fn serve_connection<T>(self, io: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), self)
            .await;
        if let Err(e) = served {
            tracing::debug!(error = %e, "host connection ended");
        }
    }
}

/// Hands the request to one of the generated services: always ready, cheap to clone (an `Arc`
/// inside), and already boxing their futures.
fn route<T>(service: &T, req: Request<Incoming>) -> BoxFuture<Response<Body>, Infallible>
where
    T: Service<
            Request<Incoming>,
            Response = Response<Body>,
            Error = Infallible,
            Future = BoxFuture<Response<Body>, Infallible>,
        > + Clone,
{
    service.clone().call(req)
}

impl<S: Send + Sync + 'static> hyper::service::Service<Request<Incoming>> for Routes<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    /// Routes by the service name in the path, `/<package.Service>/<Method>`.
    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let name = req.uri().path().split('/').nth(1).unwrap_or_default();
        match name {
            BackendServer::<BackendService<S>>::NAME => route(&self.backend, req),
            GrpcBrokerServer::<BrokerService>::NAME => route(&self.broker, req),
            GrpcControllerServer::<Controller>::NAME => route(&self.controller, req),
            GrpcStdioServer::<Stdio>::NAME => route(&self.stdio, req),
            PluginVersionServer::<Version>::NAME => route(&self.version, req),
            PluginMultiplexingServer::<Multiplexing>::NAME => route(&self.multiplexing, req),
            HealthServer::NAME => route(&self.health, req),
            _ => {
                let status = tonic::Status::unimplemented(format!("unknown service {name:?}"));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
