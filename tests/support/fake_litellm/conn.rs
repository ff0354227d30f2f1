//! Connections: a listener whose sockets the fake can cut (`stop`, `Fault::Reset`).

use super::*;

/// Per-connection kill switch, reachable from handlers (for `Reset`) and from `stop()`.
pub(crate) struct ConnCtl {
    pub(crate) killed: AtomicBool,
    pub(crate) read_waker: Mutex<Option<Waker>>,
    /// For `Truncated`: how many bytes of the next response body may go out before the
    /// connection is cut (`usize::MAX` = no limit).
    pub(crate) truncate_body_to: AtomicUsize,
}

impl Default for ConnCtl {
    fn default() -> Self {
        Self {
            killed: AtomicBool::new(false),
            read_waker: Mutex::new(None),
            truncate_body_to: AtomicUsize::new(usize::MAX),
        }
    }
}

impl ConnCtl {
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let waker = self
            .read_waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // Wakes hyper's idle read so it sees end-of-stream and closes the socket now.
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

pub(crate) struct FakeListener {
    pub(crate) inner: TcpListener,
    pub(crate) shared: Arc<Shared>,
}

impl axum::serve::Listener for FakeListener {
    type Io = FakeConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let ctl = Arc::new(ConnCtl::default());
                    let mut conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                    conns.retain(|c| c.strong_count() > 0);
                    conns.push(Arc::downgrade(&ctl));
                    return (
                        FakeConn {
                            stream,
                            ctl,
                            cut: None,
                        },
                        addr,
                    );
                }
                // E.g. out of file descriptors under a benchmark: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that reads end-of-stream and fails writes once killed.
pub(crate) struct FakeConn {
    pub(crate) stream: TcpStream,
    pub(crate) ctl: Arc<ConnCtl>,
    /// Bytes still allowed out before a truncation cut, once the cut point is known.
    pub(crate) cut: Option<usize>,
}

impl FakeConn {
    /// How much of `buf` may be written now, arming a truncation cut when the response's
    /// header block ends inside `buf` (hyper writes each header block in one buffer).
    pub(crate) fn allowance(&mut self, buf: &[u8]) -> usize {
        if self.cut.is_none() {
            let body_limit = self.ctl.truncate_body_to.load(Ordering::SeqCst);
            if body_limit == usize::MAX {
                return buf.len();
            }
            match buf.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(i) => self.cut = Some(i + 4 + body_limit),
                None => return buf.len(),
            }
        }
        self.cut.map_or(buf.len(), |rem| rem.min(buf.len()))
    }
}

pub(crate) fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection cut by FakeLiteLlm",
    )
}

impl AsyncRead for FakeConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Ok(()));
        }
        {
            let mut slot = this
                .ctl
                .read_waker
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        // Re-check: a kill between the first check and storing the waker found no waker.
        if this.ctl.is_killed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FakeConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        let allowed = this.allowance(buf);
        if allowed == 0 && !buf.is_empty() {
            this.ctl.kill();
            return Poll::Ready(Err(killed_error()));
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, &buf[..allowed]);
        if let (Poll::Ready(Ok(n)), Some(rem)) = (&written, this.cut.as_mut()) {
            *rem = rem.saturating_sub(*n);
            if *rem == 0 {
                // Everything allowed is out: close, leaving the client short of Content-Length.
                this.ctl.kill();
            }
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.truncate_body_to.load(Ordering::SeqCst) != usize::MAX {
            // Truncation needs byte-exact accounting: write one slice at a time.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ctl.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Connection handle given to handlers through `ConnectInfo`.
#[derive(Clone)]
pub(crate) struct ConnHandle(pub(crate) Arc<ConnCtl>);

impl Connected<IncomingStream<'_, FakeListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, FakeListener>) -> Self {
        ConnHandle(stream.io().ctl.clone())
    }
}
