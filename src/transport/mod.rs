//! The go-plugin transport: how Vault/OpenBao launches this process and talks to it.
//!
//! [`serve`] checks the launch environment ([`handshake`]), creates a fresh mutual-TLS identity
//! ([`tls`]), listens on a Unix socket, serves the gRPC services the host calls
//! ([`grpc_server`] routes them to [`backend_server`], [`broker`], [`services`]) and prints
//! the handshake line. The plugin's own calls to the host's storage and system view go over
//! [`host_channel`], as the framework's storage and system view ([`host_services`]). Both directions run on Unix sockets that wake the plugin for reads only
//! ([`socket`]). Logs go to stderr in hclog's JSON format ([`log`]).

pub(crate) mod backend_server;
pub(crate) mod broker;
pub(crate) mod grpc_server;
pub(crate) mod handshake;
pub(crate) mod host_channel;
pub(crate) mod host_services;
pub(crate) mod log;
pub(crate) mod services;
pub(crate) mod socket;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tonic_health::server::HealthService;

use self::backend_server::{BackendService, Factory};
use self::broker::{Broker, BrokerService};
use self::grpc_server::{HealthServer, Routes};
use self::handshake::{HandshakeError, LaunchEnv};
use self::services::{Controller, Multiplexing, Stdio, Version};
use self::socket::HostSocket;
use self::tls::PluginIdentity;
use crate::proto::logical::plugin_version_server::PluginVersionServer;
use crate::proto::pb::backend_server::BackendServer;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;
use crate::proto::pluginutil::multiplexing::plugin_multiplexing_server::PluginMultiplexingServer;

/// A TLS handshake that takes longer than this is dropped (it is a local socket).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// How often we check that the host is still our parent.
const PARENT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What the transport needs to know about the plugin it serves, and nothing else.
pub struct PluginInfo {
    /// The environment variable that sets the log level, e.g. `MY_PLUGIN_LOG_LEVEL`.
    pub log_level_env: &'static str,
    /// The hclog `@module` of every log line.
    pub log_module: &'static str,
    /// Printed after the refusal when someone runs the binary by hand: how to register and
    /// mount it.
    pub usage: &'static str,
}

/// Serves backends built by `factory` to the host that launched this process, until the host
/// asks us to stop. Returns the process exit code.
pub fn serve<S: Send + Sync + 'static>(factory: Factory<S>, info: PluginInfo) -> ExitCode {
    let launch = match LaunchEnv::from_env() {
        Ok(launch) => launch,
        Err(e @ HandshakeError::NotLaunchedByHost) => {
            eprintln!("{e}\n\n{}", info.usage);
            return ExitCode::FAILURE;
        }
        // Launched by a host that cannot talk to us: say why in a line it logs at error level
        // (go-plugin logs plain stderr lines at debug only).
        Err(e) => {
            eprint!("{}", log::error_line(info.log_module, &e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    log::init(info.log_module, info.log_level_env);
    // One thread: the plugin serves one host over one connection, and per request a
    // single-threaded runtime costs less CPU than a work-stealing one (no cross-thread wake-ups).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(launch, factory)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "plugin failed");
            ExitCode::FAILURE
        }
    }
}

/// Removes the socket file when the server stops, however it stops.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn run<S: Send + Sync + 'static>(
    launch: LaunchEnv,
    factory: Factory<S>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let identity = PluginIdentity::generate()?;
    let host_cert = tls::parse_host_cert(&launch.client_cert_pem)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(&identity, host_cert.clone())?));
    let dial_tls = Arc::new(tls::client_config(&identity, host_cert)?);

    let socket = SocketFile(socket_path(&launch.socket_dir));
    let listener = UnixListener::bind(&socket.0)?;

    let shutdown = Arc::new(Notify::new());
    let broker = Arc::new(Broker::default());
    let health = tonic_health::server::HealthReporter::new();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let routes = Routes {
        backend: BackendServer::new(BackendService::new(factory, broker.clone(), dial_tls))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
        broker: GrpcBrokerServer::new(BrokerService(broker)),
        controller: GrpcControllerServer::new(Controller(shutdown.clone())),
        stdio: GrpcStdioServer::new(Stdio),
        version: PluginVersionServer::new(Version),
        multiplexing: PluginMultiplexingServer::new(Multiplexing),
        health: HealthServer::new(HealthService::from_health_reporter(health)),
    };

    // Each connection gets a task of its own for TLS and then HTTP/2, so that one slow peer
    // cannot stall the accept loop.
    let server = tokio::spawn(async move {
        loop {
            let stream = match listener
                .accept()
                .await
                .and_then(|(s, _)| HostSocket::new(s))
            {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let routes = routes.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => routes.serve_connection(tls).await,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "rejected a connection: TLS handshake failed")
                    }
                    Err(_) => tracing::warn!("rejected a connection: TLS handshake timed out"),
                }
            });
        }
    });

    // The handshake line is the first and only thing we ever print on stdout.
    let line = handshake::handshake_line(&socket.0.to_string_lossy(), identity.cert.as_ref());
    let mut stdout = tokio::io::stdout();
    stdout.write_all(line.as_bytes()).await?;
    stdout.flush().await?;
    tracing::debug!(socket = %socket.0.display(), version = services::PLUGIN_VERSION, "plugin serving");

    tokio::select! {
        _ = shutdown.notified() => tracing::debug!("shutting down"),
        _ = terminate_signal() => tracing::info!("terminated by signal"),
        _ = parent_gone() => tracing::warn!("the host process is gone; exiting"),
        result = server => {
            result?;
            return Err("gRPC server stopped unexpectedly".into());
        }
    }
    // Let the Shutdown reply reach the host before the process goes away.
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(())
}

/// A fresh socket path in `dir`, like go-plugin's `plugin<random>`.
fn socket_path(dir: &Path) -> PathBuf {
    let id = uuid::Uuid::new_v4().simple().to_string();
    dir.join(format!("plugin{}", &id[..10]))
}

/// Resolves on SIGTERM. SIGINT is swallowed: Ctrl-C in the host's terminal reaches the whole
/// process group, and the host decides when its plugins stop.
async fn terminate_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => tracing::debug!("ignoring SIGINT"),
        }
    }
}

/// Resolves when our parent changes: the host died without stopping us (it would leak us).
async fn parent_gone() {
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(PARENT_CHECK_INTERVAL).await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}
