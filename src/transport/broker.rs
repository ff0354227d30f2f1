//! go-plugin's connection broker, plugin side.
//!
//! The host keeps one `StartStream` open per connection and, before each `Setup`, announces on
//! it where it listens for that mount's brokered services (`pb.Storage`, `pb.SystemView`). We
//! buffer those announcements by service id and dial them back with the same mutual TLS.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::host_channel::HostChannel;
use super::socket::HostSocket;
use crate::proto::plugin::ConnInfo;
use crate::proto::plugin::grpc_broker_server::GrpcBroker;

/// How long Setup waits for the host's announcement (go-plugin's own limit).
pub const CONN_INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long dialing the host's broker listener may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Broker failures, reported as Setup errors.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The host never announced the id.
    #[error("timeout waiting for connection info for broker id {0}")]
    Timeout(u32),
    /// The host announced something we cannot dial.
    #[error("broker id {id}: unsupported network {network:?}")]
    Network {
        /// The broker id.
        id: u32,
        /// What the host announced.
        network: String,
    },
    /// Dialing failed.
    #[error("dialing the host broker at {address}: {reason}")]
    Dial {
        /// The announced address.
        address: String,
        /// Why.
        reason: String,
    },
}

/// Announcements received from the host, by service id.
#[derive(Default)]
pub struct Broker {
    pending: Mutex<HashMap<u32, ConnInfo>>,
    arrived: Notify,
}

impl Broker {
    /// Waits for (and takes) the announcement for `id`.
    pub async fn conn_info(&self, id: u32) -> Result<ConnInfo, BrokerError> {
        let deadline = tokio::time::Instant::now() + CONN_INFO_TIMEOUT;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            // Register interest before looking, so an announcement between the two is not lost.
            arrived.as_mut().enable();
            if let Some(info) = self.pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                return Ok(info);
            }
            tokio::time::timeout_at(deadline, arrived)
                .await
                .map_err(|_| BrokerError::Timeout(id))?;
        }
    }

    fn announce(&self, info: ConnInfo) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(info.service_id, info);
        }
        self.arrived.notify_waiters();
    }
}

/// The `plugin.GRPCBroker` service.
pub struct BrokerService(pub Arc<Broker>);

type ConnInfoStream = Pin<Box<dyn Stream<Item = Result<ConnInfo, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcBroker for BrokerService {
    type StartStreamStream = ConnInfoStream;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let broker = self.0.clone();
        tokio::spawn(async move {
            while let Some(Ok(info)) = inbound.next().await {
                tracing::debug!(service_id = info.service_id, network = %info.network, "broker announcement");
                broker.announce(info);
            }
        });
        // We offer no brokered services of our own, so nothing is ever sent back; the stream
        // stays open until the host closes it.
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// Connects to an announced host listener over mutual TLS.
pub async fn dial(
    info: &ConnInfo,
    tls: Arc<rustls::ClientConfig>,
) -> Result<HostChannel, BrokerError> {
    if info.network != "unix" {
        return Err(BrokerError::Network {
            id: info.service_id,
            network: info.network.clone(),
        });
    }
    let dial_err = |reason: String| BrokerError::Dial {
        address: info.address.clone(),
        reason,
    };
    let connect = async {
        let socket = HostSocket::new(UnixStream::connect(&info.address).await?)?;
        let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let tls = TlsConnector::from(tls).connect(name, socket).await?;
        HostChannel::handshake(tls)
            .await
            .map_err(std::io::Error::other)
    };
    tokio::time::timeout(DIAL_TIMEOUT, connect)
        .await
        .map_err(|_| dial_err("timed out".to_string()))?
        .map_err(|e| dial_err(format!("{e}: {}", source_chain(&e))))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(&s.to_string());
        out.push_str("; ");
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conn_info_waits_for_the_announcement() {
        let broker = Arc::new(Broker::default());
        let waiter = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.conn_info(2).await })
        };
        tokio::task::yield_now().await;
        broker.announce(ConnInfo {
            service_id: 1,
            network: "unix".into(),
            address: "/a".into(),
            knock: None,
        });
        broker.announce(ConnInfo {
            service_id: 2,
            network: "unix".into(),
            address: "/b".into(),
            knock: None,
        });
        let info = waiter.await.unwrap().unwrap();
        assert_eq!(info.address, "/b");
        // Announcements that arrived before anyone waited are kept.
        assert_eq!(broker.conn_info(1).await.unwrap().address, "/a");
    }

    #[tokio::test(start_paused = true)]
    async fn conn_info_times_out() {
        let broker = Broker::default();
        assert!(matches!(
            broker.conn_info(7).await,
            Err(BrokerError::Timeout(7))
        ));
    }
}
