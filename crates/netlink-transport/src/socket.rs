//! One open netlink socket: created in the configured namespace with the transport's socket
//! options, non-blocking under tokio; or a scripted one; with the fault layer on top when asked.

use std::io;

use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};

use crate::Options;
use crate::error::Error;
use crate::fault::{Faults, FaultyConn, Scripted};
use crate::netns;

/// Receive buffer per `recv`: the kernel caps a dump datagram at 32 KiB; ipset echoes a failed
/// 64 KiB batch message whole.
pub(crate) const RECV_BUF: usize = 96 * 1024;

enum Endpoint {
    Kernel(TokioSocket),
    Scripted(Scripted),
}

/// An open socket.
pub(crate) struct Conn {
    endpoint: Endpoint,
    faults: Option<(Faults, FaultyConn)>,
    /// Largest datagram the socket's send buffer takes (`netlink_sendmsg` refuses more than
    /// `sk_sndbuf - 32`).
    pub(crate) max_send: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("scripted", &matches!(self.endpoint, Endpoint::Scripted(_)))
            .field("max_send", &self.max_send)
            .finish_non_exhaustive()
    }
}

/// Socket options every client wants: bound and connected to the kernel, errors that do not
/// echo whole requests (CAP_ACK: keeps the replies of a failing batch small), a receive buffer
/// for a window of replies (`SO_RCVBUFFORCE` when permitted, else capped by `rmem_max`).
fn open_kernel(protocol: isize, rcvbuf: usize) -> io::Result<(TokioSocket, usize)> {
    let mut socket = TokioSocket::new(protocol)?;
    let s = socket.socket_mut();
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    s.set_cap_ack(true)?;
    let size = rcvbuf.min(usize::try_from(i32::MAX).unwrap_or(usize::MAX));
    if setsockopt(socket.socket_ref(), sockopt::RcvBufForce, &size).is_err() {
        setsockopt(socket.socket_ref(), sockopt::RcvBuf, &size).map_err(io::Error::from)?;
    }
    let sndbuf = getsockopt(socket.socket_ref(), sockopt::SndBuf).unwrap_or(212_992);
    Ok((socket, sndbuf.saturating_sub(64)))
}

impl Conn {
    /// Opens a socket as `opts` say (in its namespace, on a helper thread when one is set).
    pub(crate) async fn open(opts: &Options) -> Result<Self, Error> {
        let faults = opts.faults.clone();
        let scripted = faults
            .as_ref()
            .and_then(|f| f.scripted_kernel(opts.protocol));
        let endpoint = match scripted {
            Some(responder) => (Endpoint::Scripted(Scripted::new(responder)), usize::MAX),
            None => {
                let (protocol, rcvbuf) = (opts.protocol, opts.rcvbuf);
                let opened = match opts.netns.as_deref() {
                    // Registers with the current runtime's reactor.
                    None => open_kernel(protocol, rcvbuf),
                    Some(path) => {
                        netns::run_in(Some(path), move || open_kernel(protocol, rcvbuf)).await?
                    }
                };
                let (socket, max_send) = opened.map_err(Error::io)?;
                (Endpoint::Kernel(socket), max_send)
            }
        };
        if let Some(f) = &faults {
            f.note_open();
        }
        Ok(Self {
            endpoint: endpoint.0,
            faults: faults.map(|f| (f, FaultyConn::default())),
            max_send: endpoint.1,
        })
    }

    /// Sends one datagram (it may hold many requests).
    pub(crate) async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some((f, conn)) = &mut self.faults {
            f.outgoing(data, conn);
        }
        match &mut self.endpoint {
            Endpoint::Kernel(s) => {
                let n = s.send(data).await?;
                if n != data.len() {
                    return Err(io::Error::other(format!(
                        "short netlink send: {n} of {} bytes",
                        data.len()
                    )));
                }
            }
            Endpoint::Scripted(s) => s.send(data),
        }
        Ok(())
    }

    /// Receives a datagram into `buf` if one is queued (`Ok(false)`: none).
    pub(crate) fn try_recv(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        self.overflowed()?;
        match &mut self.endpoint {
            Endpoint::Kernel(s) => {
                buf.reserve(RECV_BUF);
                match s.socket_ref().recv(buf, libc_dontwait()) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Endpoint::Scripted(s) => match s.recv(RECV_BUF) {
                Some(d) => *buf = d,
                None => return Ok(false),
            },
        }
        self.filter(buf);
        Ok(true)
    }

    /// The `ENOBUFS` the fault layer holds for the next receive.
    fn overflowed(&mut self) -> io::Result<()> {
        let overflow = self
            .faults
            .as_mut()
            .is_some_and(|(_, conn)| conn.take_overflow());
        if overflow {
            return Err(io::Error::from_raw_os_error(crate::Errno::ENOBUFS.get()));
        }
        Ok(())
    }

    /// Drops what the fault layer says was lost.
    fn filter(&self, buf: &mut Vec<u8>) {
        if let Some((_, conn)) = &self.faults {
            conn.filter(buf);
        }
    }

    /// Receives one datagram into `buf` (cleared first). Waits as long as it takes: the caller
    /// bounds it.
    pub(crate) async fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        loop {
            buf.clear();
            self.overflowed()?;
            match &mut self.endpoint {
                Endpoint::Kernel(s) => {
                    buf.reserve(RECV_BUF);
                    s.recv(buf).await?;
                }
                Endpoint::Scripted(s) => match s.recv(RECV_BUF) {
                    Some(d) => *buf = d,
                    // Nothing will come: the caller's deadline ends the wait.
                    None => std::future::pending::<()>().await,
                },
            }
            self.filter(buf);
            if !buf.is_empty() {
                return Ok(());
            }
        }
    }
}

/// `MSG_DONTWAIT`.
fn libc_dontwait() -> i32 {
    nix::sys::socket::MsgFlags::MSG_DONTWAIT.bits()
}
