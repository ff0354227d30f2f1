//! The Unix stream sockets to the host, woken for reads only.
//!
//! On a Unix socket, every time the peer reads what we wrote, the kernel signals our end as
//! writable again; tokio's `UnixStream` listens for that too, so each message the host read
//! could wake the plugin's thread for nothing (seen in `strace` as `epoll_wait` returning
//! `EPOLLOUT` alone). Our messages are small and the socket's buffer is large, so a write
//! almost never has to wait: here the socket is registered for readability only, and only a
//! write that finds the buffer full registers (a duplicate of) it for writability, until the
//! write goes through.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

pub struct HostSocket {
    socket: AsyncFd<StdUnixStream>,
    /// Registered for writability while a write waits for room in the buffer.
    room: Option<AsyncFd<StdUnixStream>>,
}

impl HostSocket {
    pub fn new(socket: tokio::net::UnixStream) -> io::Result<HostSocket> {
        Ok(HostSocket {
            socket: register(socket.into_std()?, Interest::READABLE)?,
            room: None,
        })
    }

    /// Runs `write` until the buffer takes it, waiting for room when it is full.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&StdUnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self.socket.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => {
                    self.room = None;
                    return Poll::Ready(written);
                }
            }
            let room = match &mut self.room {
                Some(room) => room,
                None => {
                    let duplicate = self.socket.get_ref().try_clone()?;
                    self.room.insert(register(duplicate, Interest::WRITABLE)?)
                }
            };
            ready!(room.poll_write_ready(cx))?.clear_ready();
        }
    }
}

#[allow(unsafe_code)]
fn register(socket: StdUnixStream, interest: Interest) -> io::Result<AsyncFd<StdUnixStream>> {
    // SAFETY: a `UnixStream` owns its descriptor: it stays open, and the same, until the
    // `AsyncFd` drops the stream.
    Ok(unsafe { AsyncFd::register_with_interest(socket, interest) }?)
}

impl AsyncRead for HostSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.socket.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let wanted = unfilled.len();
            match ready.try_io(|socket| socket.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    // Less than asked for: the socket is drained, so skip the read that would
                    // only say so (tokio's own sockets do the same).
                    if n > 0 && n < wanted {
                        ready.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for HostSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut socket| socket.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut socket| socket.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    use super::*;

    fn pair() -> (HostSocket, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (HostSocket::new(ours).unwrap(), theirs)
    }

    #[tokio::test]
    async fn a_write_that_fills_the_buffer_waits_for_the_peer_to_read() {
        let (mut ours, mut theirs) = pair();
        // Far more than a Unix socket's buffer holds.
        let sent: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let mut writing = tokio::spawn(async move { ours.write_all(&sent).await.map(|_| ours) });
        let stalled = tokio::time::timeout(Duration::from_millis(100), &mut writing).await;
        assert!(
            stalled.is_err(),
            "the whole write cannot fit before the peer reads"
        );

        let mut received = vec![0; expected.len()];
        let delivered = async {
            theirs.read_exact(&mut received).await.unwrap();
            writing.await.unwrap().unwrap()
        };
        let mut ours = tokio::time::timeout(Duration::from_secs(5), delivered)
            .await
            .expect("the write resumes once the peer reads");
        assert!(received == expected, "bytes arrive whole and in order");

        // Once it went through, writes no longer wait, and the end of our writing is seen.
        ours.write_all(b"more").await.unwrap();
        ours.shutdown().await.unwrap();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"more");
    }

    #[tokio::test]
    async fn reads_wake_for_every_message_and_see_the_end() {
        let (mut ours, mut theirs) = pair();
        let mut buf = [0; 64];
        for message in [&b"first"[..], b"second"] {
            let reading = tokio::spawn(async move {
                let n = ours.read(&mut buf).await.unwrap();
                (ours, buf[..n].to_vec())
            });
            // Sent only once the read waits, so that it must be woken for it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            theirs.write_all(message).await.unwrap();
            let (back, read) = reading.await.unwrap();
            assert_eq!(read, message);
            ours = back;
        }
        // A message larger than the read: what the first read leaves is read without a wake-up.
        theirs.write_all(&[9; 100]).await.unwrap();
        let reads = async {
            assert_eq!(ours.read(&mut buf).await.unwrap(), 64);
            assert_eq!(ours.read(&mut buf).await.unwrap(), 36);
        };
        tokio::time::timeout(Duration::from_secs(5), reads)
            .await
            .expect("the rest of the message is read");
        drop(theirs);
        assert_eq!(ours.read(&mut buf).await.unwrap(), 0);
    }
}
