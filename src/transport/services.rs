//! The small go-plugin and Vault services around the backend: controller, stdio, version and
//! multiplexing negotiation.

use std::sync::Arc;

use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::proto::logical;
use crate::proto::logical::plugin_version_server::PluginVersion;
use crate::proto::plugin;
use crate::proto::plugin::grpc_controller_server::GrpcController;
use crate::proto::plugin::grpc_stdio_server::GrpcStdio;
use crate::proto::pluginutil::multiplexing::plugin_multiplexing_server::PluginMultiplexing;
use crate::proto::pluginutil::multiplexing::{
    MultiplexingSupportRequest, MultiplexingSupportResponse,
};

/// The version reported to the host: `v` + the crate version.
pub const PLUGIN_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// `plugin.GRPCController`: the host's request to exit.
pub struct Controller(pub Arc<Notify>);

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<plugin::Empty>,
    ) -> Result<Response<plugin::Empty>, Status> {
        tracing::debug!("shutdown requested by the host");
        self.0.notify_one();
        Ok(Response::new(plugin::Empty {}))
    }
}

/// `plugin.GRPCStdio`: we log to stderr directly, so the stream never carries data; it stays
/// open until the host cancels it (the host then does not warn about missing stdio).
pub struct Stdio;

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = tokio_stream::Pending<Result<plugin::StdioData, Status>>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(tokio_stream::pending()))
    }
}

/// `logical.PluginVersion`.
pub struct Version;

#[tonic::async_trait]
impl PluginVersion for Version {
    async fn version(
        &self,
        _request: Request<logical::Empty>,
    ) -> Result<Response<logical::VersionReply>, Status> {
        Ok(Response::new(logical::VersionReply {
            plugin_version: PLUGIN_VERSION.to_string(),
        }))
    }
}

/// `pluginutil.multiplexing.PluginMultiplexing`: one process serves every mount of the plugin.
pub struct Multiplexing;

#[tonic::async_trait]
impl PluginMultiplexing for Multiplexing {
    async fn multiplexing_support(
        &self,
        _request: Request<MultiplexingSupportRequest>,
    ) -> Result<Response<MultiplexingSupportResponse>, Status> {
        Ok(Response::new(MultiplexingSupportResponse {
            supported: true,
        }))
    }
}
