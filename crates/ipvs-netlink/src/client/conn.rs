//! The netlink socket: opened in a namespace, non-blocking under tokio, large receive buffer.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use netlink_sys::{AsyncSocket, AsyncSocketExt, TokioSocket, protocols::NETLINK_GENERIC};
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{setsockopt, sockopt};

/// Largest datagram we expect: netlink dump skbs are capped at 32 KiB.
const RECV_BUF: usize = 64 * 1024;

/// An open socket, plus `/proc/net/ip_vs` of the same namespace when IPVS is present.
pub(crate) struct Opened {
    pub socket: TokioSocket,
    pub proc_table: Option<File>,
}

fn open_here(rcvbuf: usize) -> io::Result<Opened> {
    // Registers with the tokio reactor of the current runtime context.
    let mut socket = TokioSocket::new(NETLINK_GENERIC)?;
    socket.socket_mut().bind_auto()?;
    // Errors must not echo whole requests back: keeps error replies small in big batches.
    socket.socket_ref().set_cap_ack(true)?;
    // Root may exceed net.core.rmem_max; fall back to the capped option otherwise.
    let size = rcvbuf.min(usize::try_from(i32::MAX).unwrap_or(usize::MAX));
    if setsockopt(socket.socket_ref(), sockopt::RcvBufForce, &size).is_err() {
        setsockopt(socket.socket_ref(), sockopt::RcvBuf, &size).map_err(io::Error::from)?;
    }
    // thread-self: the namespace of this thread, which is what the socket was opened in.
    let proc_table = File::open("/proc/thread-self/net/ip_vs").ok();
    Ok(Opened { socket, proc_table })
}

/// Open the socket in the calling thread's namespace, or in the namespace at `netns`.
///
/// `setns` only changes the calling thread, so a short-lived helper thread enters the namespace,
/// opens the socket (which stays bound to that namespace) and exits; the runtime threads never
/// change namespace.
pub(crate) async fn open(netns: Option<&Path>, rcvbuf: usize) -> io::Result<Opened> {
    let Some(path) = netns else {
        return open_here(rcvbuf);
    };
    let path: PathBuf = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("ipvs-netns".into())
        .spawn(move || {
            let _entered = runtime.enter();
            let res = File::open(&path)
                .and_then(|ns| setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from))
                .and_then(|()| open_here(rcvbuf));
            let _ = tx.send(res);
        })?;
    rx.await
        .map_err(|_| io::Error::other("namespace helper thread died"))?
}

/// A connected, non-blocking socket with a receive buffer.
pub(crate) struct Conn {
    sock: TokioSocket,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(sock: TokioSocket) -> Self {
        Self {
            sock,
            buf: Vec::with_capacity(RECV_BUF),
        }
    }

    /// Send one datagram (may hold many requests).
    pub async fn send(&self, data: &[u8]) -> io::Result<()> {
        let n = self.sock.send(data).await?;
        if n != data.len() {
            return Err(io::Error::other(format!(
                "short netlink send: {n} of {} bytes",
                data.len()
            )));
        }
        Ok(())
    }

    /// Receive one datagram; the bytes stay valid until the next call.
    pub async fn recv(&mut self) -> io::Result<&[u8]> {
        self.buf.clear();
        self.buf.reserve(RECV_BUF);
        self.sock.recv(&mut self.buf).await?;
        Ok(&self.buf)
    }
}
