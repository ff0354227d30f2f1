//! The connection the plugin's calls to the host (storage, system view) travel on.
//!
//! Every such call is unary and its message is ready before the call starts. tonic's `Channel`
//! (hyper underneath) opens the HTTP/2 stream first and sends the body once the opened stream is
//! granted capacity, so the HEADERS frame and the DATA frame leave in two writes and OpenBao reads
//! them in two wake-ups. Here the body is queued together with the HEADERS, and both leave in one
//! write. The generated tonic clients run on it unchanged: it is a `tower::Service` over
//! `http` requests and, like `Channel`, gives their bare paths a scheme and an authority.
//!
//! There is no reconnecting: the host closes this connection only when it drops the backend
//! instance it belongs to, and a new instance gets a new connection at its `Setup`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A cheap-to-clone handle on one HTTP/2 connection to the host.
#[derive(Clone)]
pub struct HostChannel {
    send: h2::client::SendRequest<Bytes>,
}

impl HostChannel {
    /// Runs the HTTP/2 handshake on `io` and drives the connection in a task of its own until
    /// the host closes it.
    pub async fn handshake<T>(io: T) -> Result<HostChannel, h2::Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // hyper's windows (tonic's default) rather than h2's 64 KiB: a long storage list
        // arrives without waiting for window updates.
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(2 * 1024 * 1024)
            .initial_connection_window_size(5 * 1024 * 1024)
            .enable_push(false)
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "host connection closed");
            }
        });
        Ok(HostChannel { send })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for HostChannel {
    type Response = http::Response<ReplyBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness (the host's stream limit) is awaited per call, on the call's own handle.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let send = self.send.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            // HTTP/2 wants `:scheme` and `:authority`; the generated clients send the path only.
            let mut uri = http::uri::Parts::from(parts.uri);
            uri.scheme = Some(http::uri::Scheme::HTTP);
            uri.authority = Some(http::uri::Authority::from_static("localhost"));
            parts.uri = http::Uri::from_parts(uri)?;
            // A unary request's body is one encoded message, available at once.
            let body = body.collect().await?.to_bytes();
            let mut send = send.ready().await?;
            let (reply, mut stream) =
                send.send_request(http::Request::from_parts(parts, ()), body.is_empty())?;
            if !body.is_empty() {
                stream.send_data(body, true)?;
            }
            Ok(reply.await?.map(ReplyBody))
        })
    }
}

/// The body of a host reply: its DATA frames, then its trailers (where gRPC puts the status).
pub struct ReplyBody(h2::RecvStream);

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let recv = &mut self.0;
        match std::task::ready!(recv.poll_data(cx)) {
            Some(Ok(data)) => {
                // Hand the window back, or the host stops once a reply fills it (2 MiB).
                let _ = recv.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => match std::task::ready!(recv.poll_trailers(cx)) {
                Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Ok(None) => Poll::Ready(None),
                Err(e) => Poll::Ready(Some(Err(e))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use prost::Message;
    use tokio::net::UnixStream;

    use super::*;
    use crate::proto::pb;
    use crate::proto::pb::storage_client::StorageClient;

    /// Counts the writes that reach the socket.
    struct CountingIo {
        io: UnixStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for CountingIo {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingIo {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let written = Pin::new(&mut self.io).poll_write(cx, buf);
            if written.is_ready() {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            written
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
            if written.is_ready() {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            written
        }

        fn is_write_vectored(&self) -> bool {
            self.io.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// How the test host answers a `pb.Storage/Get` for a key.
    #[derive(Clone, Copy)]
    enum Answer {
        /// An entry holding `size` bytes.
        Entry { size: usize },
        /// A gRPC error status in the trailers.
        Status { code: u8, message: &'static str },
    }

    /// A host speaking plain HTTP/2 on the other end, so the test sees the frames as sent.
    async fn host(io: UnixStream, answer: Answer) {
        let mut connection = h2::server::handshake(io).await.unwrap();
        // Each request in a task of its own: the connection must keep being polled to read
        // the request bodies.
        while let Some(Ok((request, respond))) = connection.accept().await {
            tokio::spawn(answer_get(request, respond, answer));
        }
    }

    async fn answer_get(
        request: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
        answer: Answer,
    ) {
        assert_eq!(request.uri().path(), "/pb.Storage/Get");
        let mut body = request.into_body();
        let mut message = Vec::new();
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let args = pb::StorageGetArgs::decode(&message[5..]).unwrap();
        let reply = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut stream = respond.send_response(reply, false).unwrap();
        let mut trailers = http::HeaderMap::new();
        match answer {
            Answer::Entry { size } => {
                let reply = pb::StorageGetReply {
                    entry: Some(pb::StorageEntry {
                        key: args.key,
                        value: vec![7; size],
                        seal_wrap: false,
                    }),
                    err: String::new(),
                };
                let mut framed = vec![0];
                framed.extend_from_slice(&(reply.encoded_len() as u32).to_be_bytes());
                reply.encode(&mut framed).unwrap();
                stream.send_data(Bytes::from(framed), false).unwrap();
                trailers.insert("grpc-status", "0".parse().unwrap());
            }
            Answer::Status { code, message } => {
                trailers.insert("grpc-status", code.to_string().parse().unwrap());
                trailers.insert("grpc-message", message.parse().unwrap());
            }
        }
        stream.send_trailers(trailers).unwrap();
    }

    async fn connect(answer: Answer) -> (StorageClient<HostChannel>, Arc<AtomicUsize>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        tokio::spawn(host(theirs, answer));
        let writes = Arc::new(AtomicUsize::new(0));
        let io = CountingIo {
            io: ours,
            writes: writes.clone(),
        };
        let channel = HostChannel::handshake(io).await.unwrap();
        let client = StorageClient::new(channel).max_decoding_message_size(usize::MAX);
        (client, writes)
    }

    fn get(key: &str) -> pb::StorageGetArgs {
        pb::StorageGetArgs {
            key: key.into(),
            txn: String::new(),
        }
    }

    #[tokio::test]
    async fn a_call_leaves_in_one_write_and_its_reply_comes_back() {
        let (mut client, writes) = connect(Answer::Entry { size: 10 }).await;
        // The first call also carries the connection's settings acknowledgement.
        client.get(get("warm-up")).await.unwrap();
        for key in ["wal/1", "index/ab"] {
            writes.store(0, Ordering::SeqCst);
            let entry = client.get(get(key)).await.unwrap().into_inner().entry;
            assert_eq!(entry.map(|e| e.key).as_deref(), Some(key));
            assert_eq!(
                writes.load(Ordering::SeqCst),
                1,
                "HEADERS and DATA in one write"
            );
        }
    }

    #[tokio::test]
    async fn replies_larger_than_the_windows_keep_flowing() {
        // 3 MiB each: more than a stream's window (2 MiB) unless we hand it back as we read.
        const SIZE: usize = 3 * 1024 * 1024;
        let (client, _) = connect(Answer::Entry { size: SIZE }).await;
        let calls = (0..3).map(|i| {
            let mut client = client.clone();
            async move { client.get(get(&format!("big/{i}"))).await }
        });
        let replies = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::future::join_all(calls),
        )
        .await
        .expect("replies stalled: flow-control capacity not released");
        for reply in replies {
            let entry = reply.unwrap().into_inner().entry.unwrap();
            assert_eq!(entry.value.len(), SIZE);
        }
    }

    #[tokio::test]
    async fn a_grpc_error_reaches_the_caller() {
        let (mut client, _) = connect(Answer::Status {
            code: 5,
            message: "no such entry",
        })
        .await;
        let status = client.get(get("x")).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "no such entry");
    }

    #[tokio::test]
    async fn calls_on_a_closed_connection_fail_at_once() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let host = tokio::spawn(async move {
            let mut connection = h2::server::handshake(theirs).await.unwrap();
            // Serve nothing: close once the handshake is done.
            let _ = connection.accept().await;
        });
        let channel = HostChannel::handshake(ours).await.unwrap();
        let mut client = StorageClient::new(channel);
        host.abort();
        let _ = host.await;
        let result = tokio::time::timeout(Duration::from_secs(5), client.get(get("x")))
            .await
            .expect("a call on a closed connection hung");
        assert!(result.is_err());
    }
}
