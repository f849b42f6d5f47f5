//! [`Transport`]: one netlink socket of one protocol, the requests on it, and its rebuilding.

use std::collections::BTreeSet;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};

use crate::error::Error;
use crate::socket::{Conn, RECV_BUF};
use crate::wire::{self, Message, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, Reply};
use crate::{Errno, Options};

/// How often a dump interrupted by concurrent changes is redone before giving up.
pub const DUMP_ATTEMPTS: usize = 3;

/// One part of a dump as it arrives.
#[derive(Debug, Clone, Copy)]
pub enum DumpPart<'a> {
    /// A message of the dump.
    Message(Message<'a>),
    /// The kernel flagged the dump as interrupted by a concurrent change: forget what it
    /// delivered so far, it starts again.
    Restart,
}

/// A netlink socket of one protocol and the requests on it: sequence numbers, a deadline on
/// every send and receive, replies matched to requests, dumps, pipelined batches
/// ([`Transport::batch`]). After a timeout, lost replies or a socket error the socket is closed,
/// and the next request opens a new one (in the same namespace; resolving the generic netlink
/// family again).
#[derive(Debug)]
pub struct Transport {
    pub(crate) opts: Options,
    pub(crate) conn: Option<Conn>,
    seq: u32,
    family: u16,
    pub(crate) rx: Vec<u8>,
    pub(crate) tx: Vec<u8>,
}

impl Transport {
    /// Opens the socket now (so that a missing module or namespace shows at connect time).
    pub async fn connect(opts: Options) -> Result<Self, Error> {
        let mut t = Self {
            opts,
            conn: None,
            // Distinct per process, so stale replies of a previous process cannot match.
            seq: std::process::id().wrapping_mul(0x9E37_79B9),
            family: 0,
            rx: Vec::with_capacity(RECV_BUF),
            tx: Vec::new(),
        };
        t.ensure_open().await?;
        Ok(t)
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The generic netlink family id resolved at the last open (0 without a family).
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// Whether a socket is open (false after a failure closed it, until the next request).
    pub fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the socket; the next request opens a new one.
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// Opens the socket if it is closed (and resolves the generic netlink family on it).
    pub async fn ensure_open(&mut self) -> Result<(), Error> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.opts).await?);
            if let Some(name) = self.opts.genl_family {
                match self.resolve_family(name).await {
                    Ok(id) => self.family = id,
                    Err(e) => {
                        self.conn = None;
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reserves `n` consecutive sequence numbers, returning the first.
    pub(crate) fn next_seqs(&mut self, n: usize) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(u32::try_from(n).unwrap_or(u32::MAX));
        first
    }

    /// The message type to put on the wire: the family id for generic netlink.
    pub(crate) fn kind(&self) -> Option<u16> {
        self.opts.genl_family.map(|_| self.family)
    }

    /// Sends `self.tx`, bounded by the deadline; closes the socket on failure.
    pub(crate) async fn send_tx(&mut self) -> Result<(), Error> {
        let timeout = self.opts.timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::io(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        let res = match tokio::time::timeout(timeout, conn.send(&self.tx)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io(e)),
            Err(_) => Err(Error::Timeout(timeout)),
        };
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    /// Receives one datagram into `self.rx`, bounded by the deadline. Does not close the socket
    /// (lost replies may be recoverable).
    pub(crate) async fn recv(&mut self) -> Result<(), Error> {
        let timeout = self.opts.timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::io(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        match tokio::time::timeout(timeout, conn.recv(&mut self.rx)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io(e)),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Encodes one request into `self.tx` (cleared) with `flags` and a fresh sequence number.
    fn encode_one<E: From<Error>>(
        &mut self,
        flags: u16,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<u32, E> {
        self.tx.clear();
        encode(&mut self.tx)?;
        let len = wire::Header::parse(&self.tx)
            .map(|h| h.len)
            .map_err(|e| E::from(Error::Frame(e)))?;
        if usize::try_from(len).ok() != Some(self.tx.len()) {
            return Err(E::from(Error::Frame(wire::FrameError::Length {
                len,
                have: self.tx.len(),
            })));
        }
        let seq = self.next_seqs(1);
        let own = wire::flags_at(&self.tx, 0);
        let kind = self.kind();
        wire::patch(&mut self.tx, 0, kind, own | flags | NLM_F_REQUEST, seq);
        Ok(seq)
    }

    /// Sends one request (`encode` appends it as one whole netlink message; its sequence number
    /// and flags are set here, plus the family id for generic netlink) with `NLM_F_ACK`, and hands
    /// every data message of the answer to `each`, until the ACK, the end of a dump or an error
    /// (the kernel's: [`Error::Kernel`]). Every receive is bounded by the timeout; a timeout,
    /// lost replies, a socket error or an error from `each` close the socket.
    pub async fn request<E: From<Error> + Send>(
        &mut self,
        flags: u16,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E> + Send,
        mut each: impl FnMut(Message<'_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        self.ensure_open().await?;
        let seq = self.encode_one(flags | NLM_F_ACK, encode)?;
        self.send_tx().await?;
        let res = self
            .answer(seq, &mut |part| match part {
                DumpPart::Message(m) => each(m),
                DumpPart::Restart => Ok(()),
            })
            .await;
        self.settle(res).map(|_| ())
    }

    /// Runs a dump (`NLM_F_DUMP`) and hands each message to `each` as it arrives. A dump the
    /// kernel flags as interrupted by a concurrent change (`NLM_F_DUMP_INTR`) is read to its end,
    /// then `each` gets [`DumpPart::Restart`] and the dump is redone, up to [`DUMP_ATTEMPTS`]
    /// times. Every receive is bounded by the timeout, not the whole dump: a dump of 100,000
    /// entries takes as long as it takes, a kernel that stops answering fails it.
    pub async fn dump<E: From<Error> + Send>(
        &mut self,
        encode: impl Fn(&mut Vec<u8>) -> Result<(), E> + Send,
        mut each: impl FnMut(DumpPart<'_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        for attempt in 0..DUMP_ATTEMPTS {
            if attempt > 0 {
                each(DumpPart::Restart)?;
            }
            self.ensure_open().await?;
            let seq = self.encode_one(NLM_F_DUMP | NLM_F_ACK, &encode)?;
            self.send_tx().await?;
            let res = self.answer(seq, &mut each).await;
            if !self.settle(res)? {
                return Ok(());
            }
        }
        Err(E::from(Error::DumpInterrupted(DUMP_ATTEMPTS)))
    }

    /// Sends several messages in one datagram, for a subsystem that handles them as one
    /// transaction (an nfnetlink batch: `NFNL_MSG_BATCH_BEGIN`, the changes, `..._END`). `encode`
    /// appends whole messages; each gets the next sequence number and `NLM_F_REQUEST`, its own
    /// flags kept. Returns once every message that asked for `NLM_F_ACK` is acknowledged; an error
    /// answering any message before that fails the whole ([`Error::Kernel`]: nfnetlink aborts the
    /// batch). nfnetlink answers a batch's messages together at its end, in order: put
    /// `NLM_F_ACK` on every change (not on BEGIN/END, which it never acknowledges). Every receive
    /// is bounded by the timeout; a timeout or lost replies close the socket.
    pub async fn transaction<E: From<Error> + Send>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        self.ensure_open().await?;
        self.tx.clear();
        encode(&mut self.tx)?;
        // Where each message starts, and its own flags.
        let mut starts = Vec::new();
        let mut at = 0;
        for msg in wire::messages(&self.tx) {
            let msg = msg.map_err(|e| E::from(Error::Frame(e)))?;
            starts.push((at, msg.header.flags));
            at += msg.bytes.len().next_multiple_of(4);
        }
        let count = u32::try_from(starts.len()).unwrap_or(u32::MAX);
        let base = self.next_seqs(starts.len());
        let kind = self.kind();
        let mut awaiting = BTreeSet::new();
        for (seq, (start, own)) in (base..).zip(starts) {
            wire::patch(&mut self.tx, start, kind, own | NLM_F_REQUEST, seq);
            if own & NLM_F_ACK != 0 {
                awaiting.insert(seq);
            }
        }
        self.send_tx().await?;
        let res = self.acks(base, count, &mut awaiting).await;
        self.settle::<E>(res.map(|()| false)).map(|_| ())
    }

    /// Reads answers until every sequence number of `awaiting` is acknowledged; an error
    /// answering any of the `count` messages from `base` on ends it.
    async fn acks<E>(
        &mut self,
        base: u32,
        count: u32,
        awaiting: &mut BTreeSet<u32>,
    ) -> Result<(), Answer<E>> {
        while !awaiting.is_empty() {
            self.recv().await.map_err(Answer::Broken)?;
            for msg in wire::messages(&self.rx) {
                let msg = msg.map_err(|e| Answer::Broken(Error::Frame(e)))?;
                if msg.header.seq.wrapping_sub(base) >= count {
                    continue; // a late answer to an earlier request
                }
                match msg.reply().map_err(|e| Answer::Broken(Error::Frame(e)))? {
                    Reply::Ack => {
                        awaiting.remove(&msg.header.seq);
                    }
                    Reply::Error { errno, .. } | Reply::Done(Some(errno)) => {
                        return Err(Answer::Kernel(errno));
                    }
                    Reply::Data | Reply::Noise | Reply::Done(None) => {}
                }
            }
        }
        Ok(())
    }

    /// Closes the socket when an answer failed in a way that leaves replies queued or unknown.
    fn settle<E: From<Error>>(&mut self, res: Result<bool, Answer<E>>) -> Result<bool, E> {
        match res {
            Ok(interrupted) => Ok(interrupted),
            Err(Answer::Kernel(errno)) => Err(E::from(Error::Kernel(errno))),
            Err(Answer::Broken(e)) => {
                self.conn = None;
                Err(E::from(e))
            }
            Err(Answer::Caller(e)) => {
                // The rest of the answer may still come: start over on a fresh socket.
                self.conn = None;
                Err(e)
            }
        }
    }

    /// Reads the answer to `seq` until it ends; returns whether a dump was interrupted.
    async fn answer<E: Send>(
        &mut self,
        seq: u32,
        each: &mut (dyn FnMut(DumpPart<'_>) -> Result<(), E> + Send),
    ) -> Result<bool, Answer<E>> {
        let mut interrupted = false;
        loop {
            self.recv().await.map_err(Answer::Broken)?;
            for msg in wire::messages(&self.rx) {
                let msg = msg.map_err(|e| Answer::Broken(Error::Frame(e)))?;
                if msg.header.seq != seq {
                    continue; // a late answer to an earlier request
                }
                interrupted |= msg.dump_interrupted();
                match msg.reply().map_err(|e| Answer::Broken(Error::Frame(e)))? {
                    Reply::Data if !interrupted => {
                        each(DumpPart::Message(msg)).map_err(Answer::Caller)?;
                    }
                    Reply::Data | Reply::Noise => {}
                    Reply::Ack | Reply::Done(None) => return Ok(interrupted),
                    Reply::Error { errno, .. } | Reply::Done(Some(errno)) => {
                        return Err(Answer::Kernel(errno));
                    }
                }
            }
        }
    }

    /// CTRL_CMD_GETFAMILY `name` -> the family id (on the socket just opened).
    async fn resolve_family(&mut self, name: &'static str) -> Result<u16, Error> {
        let mut id = None;
        let encode = |buf: &mut Vec<u8>| {
            let mut msg = NetlinkMessage::from(GenlMessage::from_payload(GenlCtrl {
                cmd: GenlCtrlCmd::GetFamily,
                nlas: vec![GenlCtrlAttrs::FamilyName(name.to_owned())],
            }));
            msg.finalize();
            buf.resize(msg.buffer_len(), 0);
            msg.serialize(buf);
            Ok::<_, Error>(())
        };
        // The nlctrl family has a fixed id; the request carries it, not ours.
        let genl = self.opts.genl_family.take();
        let res = async {
            let seq = self.encode_one(NLM_F_ACK, encode)?;
            self.send_tx().await?;
            let each = &mut |part: DumpPart<'_>| {
                if let DumpPart::Message(m) = part
                    && let Ok(reply) = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(m.bytes)
                    && let NetlinkPayload::InnerMessage(genl) = reply.payload
                {
                    id = genl.payload.nlas.iter().find_map(|a| match a {
                        GenlCtrlAttrs::FamilyId(id) => Some(*id),
                        _ => None,
                    });
                }
                Ok::<_, Error>(())
            };
            match self.answer(seq, each).await {
                Ok(_) => Ok(()),
                Err(Answer::Kernel(Errno::ENOENT)) => Err(Error::NoFamily(name)),
                Err(Answer::Kernel(errno)) => Err(Error::Kernel(errno)),
                Err(Answer::Broken(e) | Answer::Caller(e)) => Err(e),
            }
        }
        .await;
        self.opts.genl_family = genl;
        res?;
        id.ok_or(Error::NoFamily(name))
    }
}

/// How reading an answer ended, when it did not succeed.
enum Answer<E> {
    Kernel(Errno),
    Broken(Error),
    Caller(E),
}
