//! A small netlink transport shared by the rtnetlink and conntrack code: pipelined batches
//! (many requests per `sendmsg`, only errors and one final ACK come back), dumps, and
//! single exchanges, each receive bounded by a timeout.
//!
//! Why not `rtnetlink::Handle`: it sends one datagram and allocates one channel per request;
//! binding tens of thousands of addresses is dominated by per-request round trips there.

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkDeserializable,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

/// Requests per `sendmsg`. Only failures and the last request are answered, so at most this
/// many replies queue up in the socket's receive buffer before we read them.
const WINDOW: usize = 128;
/// Receive buffer per `recv`; a dump datagram of the kernel is at most 32 KiB.
const RX_BUF: usize = 64 * 1024;
/// Kernel-side receive buffer we ask for (capped by `net.core.rmem_max`).
const SO_RCVBUF: usize = 1 << 20;
/// A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried this often.
const DUMP_ATTEMPTS: usize = 3;

/// Transport failure, without the operation (the callers add it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("the kernel answered {}", crate::link::errno_text(*.0))]
    Kernel(i32),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("netlink socket: {0}")]
    Io(#[source] io::Error),
    #[error("undecodable reply: {0}")]
    Decode(String),
    #[error("dump kept being interrupted by concurrent changes")]
    DumpInterrupted,
}

/// One netlink socket of one protocol, connected to the kernel.
pub(crate) struct NlSocket {
    socket: TokioSocket,
    seq: u32,
    timeout: Duration,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl std::fmt::Debug for NlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSocket")
            .field("seq", &self.seq)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What came back for one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Position of the request in the batch.
    pub index: usize,
    /// Positive errno.
    pub errno: i32,
}

impl NlSocket {
    pub(crate) fn open(protocol: isize, timeout: Duration) -> Result<Self, TransportError> {
        let mut socket = TokioSocket::new(protocol).map_err(TransportError::Io)?;
        let s = socket.socket_mut();
        s.bind_auto().map_err(TransportError::Io)?;
        s.connect(&SocketAddr::new(0, 0))
            .map_err(TransportError::Io)?;
        // Error replies then carry only the request header, not the whole request.
        s.set_cap_ack(true).map_err(TransportError::Io)?;
        s.set_rx_buf_sz(SO_RCVBUF).map_err(TransportError::Io)?;
        Ok(Self {
            socket,
            seq: 0,
            timeout,
            rx: Vec::with_capacity(RX_BUF),
            tx: Vec::new(),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    async fn recv(&mut self) -> Result<(), TransportError> {
        self.rx.clear();
        self.rx.reserve(RX_BUF);
        match tokio::time::timeout(self.timeout, self.socket.recv(&mut self.rx)).await {
            Err(_) => Err(TransportError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(TransportError::Io(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn send_tx(&mut self) -> Result<(), TransportError> {
        match tokio::time::timeout(self.timeout, self.socket.send(&self.tx)).await {
            Err(_) => Err(TransportError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(TransportError::Io(e)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    fn push<I: NetlinkSerializable>(&mut self, msg: I, flags: u16, seq: u32) {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let start = self.tx.len();
        self.tx.resize(start + nl.buffer_len(), 0);
        if let Some(dst) = self.tx.get_mut(start..) {
            nl.serialize(dst);
        }
    }

    /// Sends every request with `flags` (plus REQUEST), `WINDOW` per datagram, and returns the
    /// requests the kernel refused. The kernel handles the messages of one datagram in order
    /// and answers errors as it goes, so the ACK of the last one closes the window.
    pub(crate) async fn batch<I, It>(
        &mut self,
        requests: It,
        flags: u16,
    ) -> Result<Vec<Failure>, TransportError>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
        It: IntoIterator<Item = I>,
    {
        let mut failures = Vec::new();
        let mut iter = requests.into_iter().peekable();
        let mut index = 0usize;
        while iter.peek().is_some() {
            self.tx.clear();
            let first_seq = self.seq.wrapping_add(1);
            let first_index = index;
            let mut count = 0usize;
            while count < WINDOW {
                let Some(msg) = iter.next() else { break };
                let last = count + 1 == WINDOW || iter.peek().is_none();
                let seq = self.next_seq();
                self.push(msg, if last { flags | NLM_F_ACK } else { flags }, seq);
                count += 1;
            }
            index += count;
            let last_seq = self.seq;
            self.send_tx().await?;
            'window: loop {
                self.recv().await?;
                for (header, payload) in parse_all::<I>(&self.rx)? {
                    let offset = header.sequence_number.wrapping_sub(first_seq);
                    let Ok(offset) = usize::try_from(offset) else {
                        continue;
                    };
                    if offset >= count {
                        continue; // a stale reply of an earlier, timed-out exchange
                    }
                    if let NetlinkPayload::Error(e) = payload {
                        if let Some(code) = e.code {
                            failures.push(Failure {
                                index: first_index + offset,
                                errno: code.get().saturating_neg(),
                            });
                        }
                        if header.sequence_number == last_seq {
                            break 'window;
                        }
                    }
                }
            }
        }
        Ok(failures)
    }

    /// Sends one request with ACK and returns the messages answered before the ACK.
    pub(crate) async fn exchange<I>(&mut self, msg: I, flags: u16) -> Result<Vec<I>, TransportError>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        self.tx.clear();
        let seq = self.next_seq();
        self.push(msg, flags | NLM_F_ACK, seq);
        self.send_tx().await?;
        let mut out = Vec::new();
        loop {
            self.recv().await?;
            for (header, payload) in parse_all::<I>(&self.rx)? {
                if header.sequence_number != seq {
                    continue;
                }
                match payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(TransportError::Kernel(code.get().saturating_neg())),
                            None => Ok(out),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }

    /// Dumps (`NLM_F_DUMP`) and returns every message; retried when the kernel flags the
    /// dump as interrupted by a concurrent change.
    pub(crate) async fn dump<I, F>(&mut self, make: F) -> Result<Vec<I>, TransportError>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
        F: Fn() -> I,
    {
        for _ in 0..DUMP_ATTEMPTS {
            self.tx.clear();
            let seq = self.next_seq();
            self.push(make(), NLM_F_DUMP, seq);
            self.send_tx().await?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'dump: loop {
                self.recv().await?;
                for (header, payload) in parse_all::<I>(&self.rx)? {
                    if header.sequence_number != seq {
                        continue;
                    }
                    interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                    match payload {
                        NetlinkPayload::Done(_) => break 'dump,
                        NetlinkPayload::Error(e) => match e.code {
                            Some(code) => {
                                return Err(TransportError::Kernel(code.get().saturating_neg()));
                            }
                            None => break 'dump,
                        },
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        _ => {}
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(TransportError::DumpInterrupted)
    }
}

/// Splits one datagram into messages; total: a short or inconsistent length is an error.
pub(crate) fn parse_all<I: NetlinkDeserializable>(
    mut buf: &[u8],
) -> Result<Vec<(NetlinkHeader, NetlinkPayload<I>)>, TransportError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = NetlinkBuffer::new_checked(buf)
            .map_err(|e| TransportError::Decode(e.to_string()))?
            .length();
        let len = usize::try_from(len).map_err(|e| TransportError::Decode(e.to_string()))?;
        let (msg, _) = buf.split_at_checked(len).ok_or_else(|| {
            TransportError::Decode(format!("message length {len} beyond datagram"))
        })?;
        let parsed = NetlinkMessage::<I>::deserialize(msg)
            .map_err(|e| TransportError::Decode(e.to_string()))?;
        let (header, payload) = parsed.into_parts();
        out.push((header, payload));
        let aligned = len.checked_add(3).map(|l| l & !3).unwrap_or(len);
        buf = buf.get(aligned..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::RouteNetlinkMessage;

    #[test]
    fn truncated_datagrams_are_errors_not_panics() {
        // An NLMSG_ERROR ack (code 0) for seq 7, then garbage lengths.
        let mut ack = vec![
            36, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: len 36, ERROR
            0, 0, 0, 0, // error 0 = ACK
            16, 0, 0, 0, 20, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // capped request header
        ];
        let parsed = parse_all::<RouteNetlinkMessage>(&ack).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0.sequence_number, 7);
        assert!(matches!(&parsed[0].1, NetlinkPayload::Error(e) if e.code.is_none()));
        for cut in 1..ack.len() {
            assert!(
                parse_all::<RouteNetlinkMessage>(&ack[..cut]).is_err(),
                "cut {cut}"
            );
        }
        ack[0] = 200; // length beyond the datagram
        assert!(parse_all::<RouteNetlinkMessage>(&ack).is_err());
        ack[0] = 0; // zero length must not loop forever
        assert!(parse_all::<RouteNetlinkMessage>(&ack).is_err());
    }
}
