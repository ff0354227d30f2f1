//! The plugin's gRPC server: hyper's HTTP/2 server on each accepted connection, each request
//! routed by its service name to one of the generated tonic services.
//!
//! tonic's own `transport::Server` would do the same behind an axum router and a stack of
//! tower layers (timeouts, connect info, error recovery) that none of our services need; per
//! request they cost the plugin 3–4 % of its CPU (alternating scripts/bench.sh runs). What stays is
//! what a gRPC server needs: HTTP/2 from hyper, the messages' codec from tonic. A request for
//! a service we do not serve gets gRPC's UNIMPLEMENTED, as from tonic's router.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::http2;
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
        if let Err(e) = http2_connection(io, self).await {
            tracing::debug!(error = %e, "host connection ended");
        }
    }
}

/// Serves `service` on hyper's HTTP/2 server over `io`.
fn http2_connection<T, S, B>(
    io: T,
    service: S,
) -> http2::Connection<TokioIo<CopiedWrites<T>>, S, TokioExecutor>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: HttpService<Incoming, ResBody = B>,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(CopiedWrites(io)), service)
}

/// The connection as h2 should see it: without vectored writes.
///
/// Over a vectored writer, h2 writes a DATA payload above 256 bytes from where it lies and
/// buffers nothing behind it, so a reply's trailers wait for the next write: most `HandleRequest`
/// replies left in two writes (HEADERS + DATA, then the trailers) and woke OpenBao twice.
/// Without vectored writes h2 copies payloads of up to 1 KiB into its buffer, and the whole
/// reply leaves in one write.
struct CopiedWrites<T>(T);

impl<T: AsyncRead + Unpin> AsyncRead for CopiedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

// `is_write_vectored` keeps its default, `false`: the point of the type.
impl<T: AsyncWrite + Unpin> AsyncWrite for CopiedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::*;
    use crate::transport::counting_io::CountingIo;

    /// A gRPC-shaped reply: HEADERS, a DATA payload of `size` bytes, trailers.
    async fn reply(size: usize) -> Result<Response<Body>, Infallible> {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = [
            Frame::data(Bytes::from(vec![7; size])),
            Frame::trailers(trailers),
        ];
        let body = StreamBody::new(tokio_stream::iter(frames.map(Ok::<_, Infallible>)));
        Ok(Response::new(Body::new(body)))
    }

    /// How many writes the server makes for one reply of `size` bytes (after a first exchange
    /// that also carries the connection's settings).
    async fn writes_per_reply(size: usize) -> usize {
        let (client_io, server_io) = tokio::net::UnixStream::pair().unwrap();
        let (server_io, writes) = CountingIo::new(server_io);
        let service = hyper::service::service_fn(move |_: Request<Incoming>| reply(size));
        tokio::spawn(http2_connection(server_io, service));
        let (client, connection) = h2::client::handshake(client_io).await.unwrap();
        tokio::spawn(connection);
        let mut counted = 0;
        for _ in 0..2 {
            counted = writes.load(Ordering::SeqCst);
            let mut client = client.clone().ready().await.unwrap();
            let (response, _) = client.send_request(Request::new(()), true).unwrap();
            let mut body = response.await.unwrap().into_body();
            while let Some(chunk) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.unwrap().len());
            }
            let trailers = body.trailers().await.unwrap().unwrap();
            assert_eq!(trailers["grpc-status"], "0");
        }
        writes.load(Ordering::SeqCst) - counted
    }

    #[tokio::test]
    async fn a_reply_and_its_trailers_leave_in_one_write() {
        // 600 bytes: above h2's 256-byte limit for copying payloads on vectored writers, the
        // size of a `HandleRequest` reply that issues a key.
        for size in [10, 600, 1000] {
            assert_eq!(writes_per_reply(size).await, 1, "reply of {size} bytes");
        }
    }
}
