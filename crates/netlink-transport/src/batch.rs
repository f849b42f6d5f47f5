//! Pipelined batches: many requests per `sendmsg`, each with its own sequence number, a bounded
//! number unanswered, every ACK and error matched back to the request's index, and one outcome
//! that says which requests failed and why.
//!
//! The kernel handles the requests of a datagram in order, synchronously in `sendmsg`, and queues
//! their answers in order, so:
//! - with [`Ack::LastPerDatagram`] only errors and the ACK of each datagram's last request come
//!   back, and any answer to request `i` proves the silent requests before it succeeded;
//! - lost answers (`ENOBUFS`) are found exactly with a barrier: a `NLMSG_NOOP` asking for an ACK,
//!   sent once the queue is drained; when its ACK arrives, every earlier request still without
//!   an answer lost it (with [`Ack::Every`]; with [`Ack::LastPerDatagram`] the silence of the
//!   unanswered ones proves nothing, so they all count as lost).
//!
//! A request whose answer does not come within the deadline fails as lost ([`Error::Timeout`]),
//! the socket is rebuilt, and the requests not yet sent go out on the new one: a fault costs the
//! requests it hit, not the batch.

use crate::Errno;
use crate::error::Error;
use crate::transport::Transport;
use crate::wire::{self, Header, NLM_F_ACK, NLM_F_REQUEST, NLMSG_NOOP, Reply};

/// Which requests of a batch ask for an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Every request: one reply per request.
    Every,
    /// Only the last request of each datagram (errors still come for every request): fewer
    /// replies for the kernel to build and for us to read.
    LastPerDatagram,
}

/// How a batch is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most requests sent and not yet answered. Bounds the replies queued in the socket's receive
    /// buffer (an ACK costs about 1 KiB of it).
    pub window: usize,
    /// Which requests ask for an ACK.
    pub ack: Ack,
    /// Most bytes per `sendmsg` (lowered to what the socket's send buffer takes; a larger
    /// request goes alone).
    pub max_datagram: usize,
    /// Keep what the kernel echoes of a refused request ([`Failure::Refused`]'s `echo`): ipset
    /// names the failing entry of a batch message there.
    pub keep_echo: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            window: 1024,
            ack: Ack::Every,
            max_datagram: 48 * 1024,
            keep_echo: false,
        }
    }
}

/// Why one request of a batch did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The kernel refused it.
    Refused {
        /// The errno.
        errno: Errno,
        /// What the kernel echoed after the error code: the request's header, and its payload
        /// unless capped (kept with [`BatchOptions::keep_echo`]; empty otherwise).
        echo: Vec<u8>,
    },
    /// It was sent but its answer was lost (timeout, `ENOBUFS`, socket error): whether the kernel
    /// applied it is unknown.
    Lost(Error),
    /// It was never sent: it could not be encoded, or no socket could be opened for it.
    NotSent(Error),
}

impl Failure {
    /// The errno: the kernel's refusal, or the transport failure's.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Refused { errno, .. } => Some(*errno),
            Self::Lost(e) | Self::NotSent(e) => e.errno(),
        }
    }

    /// A refusal, without the echo.
    pub fn refused(errno: Errno) -> Self {
        Self::Refused {
            errno,
            echo: Vec::new(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { errno, .. } => write!(f, "the kernel answered {errno}"),
            Self::Lost(e) => write!(f, "outcome unknown: {e}"),
            Self::NotSent(e) => write!(f, "not sent: {e}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Refused { .. } => None,
            Self::Lost(e) | Self::NotSent(e) => Some(e),
        }
    }
}

/// Which requests of a batch failed, and why; the others succeeded. The one outcome every client
/// hands on.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Index of the request, and why it failed; in index order.
    pub failed: Vec<(usize, Failure)>,
}

impl BatchOutcome {
    /// Whether every request succeeded.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// Drops failures for which `ok` says the effect is there anyway (EEXIST on an add, ENOENT on
    /// a delete).
    pub fn forgive(mut self, ok: impl Fn(usize, &Failure) -> bool) -> Self {
        self.failed.retain(|(i, f)| !ok(*i, f));
        self
    }

    /// Renumbers the requests (`map(i)`: the index the caller knows request `i` by).
    pub fn reindex(mut self, map: impl Fn(usize) -> usize) -> Self {
        for (i, _) in &mut self.failed {
            *i = map(*i);
        }
        self
    }

    /// Every request of a batch of `n` failed with `failure`.
    pub fn all(n: usize, failure: &Failure) -> Self {
        Self {
            failed: (0..n).map(|i| (i, failure.clone())).collect(),
        }
    }
}

/// The fate of one request during a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Unsent,
    Sent,
    Done,
}

struct State {
    slots: Vec<Slot>,
    failed: Vec<(usize, Failure)>,
    /// Requests handed to the kernel and resolved (answered or lost) so far.
    handed: usize,
    /// Requests before this index are all done.
    low: usize,
    inflight: usize,
}

impl State {
    fn done(&mut self, i: usize, failure: Option<Failure>) {
        if let Some(slot) = self.slots.get_mut(i)
            && *slot != Slot::Done
        {
            if *slot == Slot::Sent {
                self.inflight = self.inflight.saturating_sub(1);
                self.handed += 1;
            }
            *slot = Slot::Done;
            if let Some(f) = failure {
                self.failed.push((i, f));
            }
        }
    }

    /// Every sent request up to and including `i` still unanswered succeeded.
    fn done_through(&mut self, i: usize) {
        for j in self.low..=i.min(self.slots.len().saturating_sub(1)) {
            if self.slots.get(j) == Some(&Slot::Sent) {
                self.done(j, None);
            }
        }
    }

    /// Every sent request still unanswered fails with `failure`.
    fn lose_inflight(&mut self, failure: &Failure) {
        for j in self.low..self.slots.len() {
            if self.slots.get(j) == Some(&Slot::Sent) {
                self.done(j, Some(failure.clone()));
            }
        }
        self.inflight = 0;
    }

    fn advance(&mut self) {
        while self.slots.get(self.low) == Some(&Slot::Done) {
            self.low += 1;
        }
    }
}

impl Transport {
    /// Sends `count` requests pipelined and reports which failed. `encode(i, buf)` appends request
    /// `i` as one whole netlink message; its sequence number, `NLM_F_REQUEST`/`NLM_F_ACK` and (for
    /// generic netlink) the family id are set here, its own flags (`NLM_F_CREATE`, ...) kept. A
    /// request that cannot be encoded fails alone. After a fault the socket is rebuilt and the
    /// requests not yet sent go out on the new one, as long as each socket makes progress.
    pub async fn batch<E>(
        &mut self,
        count: usize,
        opts: &BatchOptions,
        mut encode: impl FnMut(usize, &mut Vec<u8>) -> Result<(), E> + Send,
    ) -> BatchOutcome
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut st = State {
            slots: vec![Slot::Unsent; count],
            failed: Vec::new(),
            handed: 0,
            low: 0,
            inflight: 0,
        };
        loop {
            st.advance();
            if st.low >= count {
                break;
            }
            if let Err(e) = self.ensure_open().await {
                let f = Failure::NotSent(e);
                for i in st.low..count {
                    if st.slots.get(i) == Some(&Slot::Unsent) {
                        st.done(i, Some(f.clone()));
                    }
                }
                break;
            }
            let before = st.handed;
            let Some(stopped) = self.attempt(&mut st, opts, &mut encode).await else {
                break;
            };
            if st.handed == before {
                // Nothing reached the kernel on a fresh socket: the rest would fare no better.
                let f = Failure::NotSent(stopped);
                for i in st.low..count {
                    st.done(i, Some(f.clone()));
                }
                break;
            }
        }
        st.failed.sort_by_key(|(i, _)| *i);
        BatchOutcome { failed: st.failed }
    }

    /// Runs the batch on the current socket until every request is answered (`None`) or the
    /// socket fails (the error; the socket is closed).
    async fn attempt<E>(
        &mut self,
        st: &mut State,
        opts: &BatchOptions,
        encode: &mut (impl FnMut(usize, &mut Vec<u8>) -> Result<(), E> + Send),
    ) -> Option<Error>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let count = st.slots.len();
        let window = opts.window.max(1);
        let every = opts.ack == Ack::Every;
        let max_send = opts
            .max_datagram
            .min(self.conn.as_ref().map_or(usize::MAX, |c| c.max_send))
            .max(1);
        // One sequence number per request, fresh for this socket.
        let base = self.next_seqs(count);
        let index_of = |seq: u32| {
            usize::try_from(seq.wrapping_sub(base))
                .ok()
                .filter(|i| *i < count)
        };
        let kind = self.kind();
        let mut next = st.low;
        st.inflight = 0;
        loop {
            st.advance();
            if st.low >= count {
                return None;
            }
            // Fill a datagram, up to the window, once at least half of it is free: topping the
            // window up as each answer arrives would send one request per datagram (a `sendmsg`
            // and a wake-up per request) as soon as the first window is in flight.
            self.tx.clear();
            let mut sent_now = Vec::new();
            let mut last = None;
            let refill = st.inflight <= window / 2;
            while refill && next < count && st.inflight < window && self.tx.len() < max_send {
                if st.slots.get(next) == Some(&Slot::Unsent) {
                    let start = self.tx.len();
                    match encode_at(&mut self.tx, next, encode) {
                        Ok(()) if start > 0 && self.tx.len().next_multiple_of(4) > max_send => {
                            // It would make the datagram larger than the socket takes
                            // (`sendmsg` fails with EMSGSIZE): it opens the next one.
                            self.tx.truncate(start);
                            break;
                        }
                        Ok(()) => {
                            let seq = base.wrapping_add(u32::try_from(next).unwrap_or(u32::MAX));
                            let own = wire::flags_at(&self.tx, start) & !NLM_F_ACK;
                            let ack = if every { NLM_F_ACK } else { 0 };
                            wire::patch(&mut self.tx, start, kind, own | NLM_F_REQUEST | ack, seq);
                            self.tx.resize(self.tx.len().saturating_add(3) & !3, 0);
                            if let Some(s) = st.slots.get_mut(next) {
                                *s = Slot::Sent;
                            }
                            st.inflight += 1;
                            sent_now.push(next);
                            last = Some((start, seq));
                        }
                        Err(e) => {
                            self.tx.truncate(start);
                            st.done(next, Some(Failure::NotSent(e)));
                        }
                    }
                }
                next += 1;
            }
            if !every && let Some((start, seq)) = last {
                // The datagram's last request carries the ACK that closes it.
                let flags = wire::flags_at(&self.tx, start) | NLM_F_ACK;
                wire::patch(&mut self.tx, start, None, flags, seq);
            }
            if !self.tx.is_empty()
                && let Err(e) = self.send_tx().await
            {
                // Not handed to the kernel: these were not applied.
                for i in sent_now {
                    if let Some(s) = st.slots.get_mut(i) {
                        *s = Slot::Done;
                    }
                    st.inflight = st.inflight.saturating_sub(1);
                    st.failed.push((i, Failure::NotSent(e.clone())));
                }
                st.lose_inflight(&Failure::Lost(e.clone()));
                return Some(e);
            }
            if st.inflight == 0 {
                continue;
            }
            // Read at least one datagram of replies.
            match self.recv().await {
                Ok(()) => {
                    if let Err(e) = self.take_replies(st, &index_of, every, opts.keep_echo) {
                        st.lose_inflight(&Failure::Lost(e.clone()));
                        self.conn = None;
                        return Some(e);
                    }
                }
                Err(Error::RepliesLost) => {
                    if !self.recover(st, &index_of, every, opts.keep_echo).await {
                        st.lose_inflight(&Failure::Lost(Error::RepliesLost));
                        self.conn = None;
                        return Some(Error::RepliesLost);
                    }
                }
                Err(e) => {
                    st.lose_inflight(&Failure::Lost(e.clone()));
                    self.conn = None;
                    return Some(e);
                }
            }
        }
    }

    /// Matches the replies in `self.rx` to requests.
    fn take_replies(
        &self,
        st: &mut State,
        index_of: &impl Fn(u32) -> Option<usize>,
        every: bool,
        keep_echo: bool,
    ) -> Result<Option<u32>, Error> {
        let mut seen_noop_ack = None;
        for msg in wire::messages(&self.rx) {
            let msg = msg.map_err(Error::Frame)?;
            let reply = msg.reply().map_err(Error::Frame)?;
            let Some(i) = index_of(msg.header.seq) else {
                if reply == Reply::Ack {
                    seen_noop_ack = Some(msg.header.seq);
                }
                continue; // a late answer to an earlier request, or a barrier's
            };
            if st.slots.get(i) != Some(&Slot::Sent) {
                continue;
            }
            match reply {
                Reply::Ack => {
                    if every {
                        st.done(i, None);
                    } else {
                        st.done_through(i);
                    }
                }
                Reply::Error { errno, echo } => {
                    let echo = if keep_echo { echo.to_vec() } else { Vec::new() };
                    st.done(i, Some(Failure::Refused { errno, echo }));
                    if !every && let Some(before) = i.checked_sub(1) {
                        // Requests run in order and answers queue in order: an answer to `i`
                        // proves the silent ones before it succeeded.
                        st.done_through(before);
                    }
                }
                Reply::Data | Reply::Done(_) | Reply::Noise => {}
            }
        }
        Ok(seen_noop_ack)
    }

    /// After `ENOBUFS`: drains what survived, then sends a barrier and reads up to its ACK; every
    /// request still unanswered then lost its answer. Returns false when that fails too.
    async fn recover(
        &mut self,
        st: &mut State,
        index_of: &(impl Fn(u32) -> Option<usize> + Sync),
        every: bool,
        keep_echo: bool,
    ) -> bool {
        if !every {
            // Silence proves nothing once answers were dropped.
            return false;
        }
        // Drain what survived, so the barrier's ACK finds room.
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return false;
            };
            match conn.try_recv(&mut self.rx) {
                Ok(true) => {
                    if self.take_replies(st, index_of, every, keep_echo).is_err() {
                        return false;
                    }
                }
                Ok(false) => break,
                Err(_) => return false,
            }
        }
        let seq = self.next_seqs(1);
        self.tx.clear();
        Header {
            len: 16, // NLMSG_HDRLEN: a header alone
            kind: NLMSG_NOOP,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            seq,
            pid: 0,
        }
        .emit(&mut self.tx);
        if self.send_tx().await.is_err() {
            return false;
        }
        loop {
            if self.recv().await.is_err() {
                return false;
            }
            match self.take_replies(st, index_of, every, keep_echo) {
                Ok(Some(s)) if s == seq => break,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        st.lose_inflight(&Failure::Lost(Error::RepliesLost));
        true
    }
}

/// Appends request `i`, checking it is one whole message.
fn encode_at<E>(
    buf: &mut Vec<u8>,
    i: usize,
    encode: &mut impl FnMut(usize, &mut Vec<u8>) -> Result<(), E>,
) -> Result<(), Error>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let start = buf.len();
    encode(i, buf).map_err(|e| Error::Encode(std::sync::Arc::new(e)))?;
    let len = Header::parse(buf.get(start..).unwrap_or_default())
        .map_err(Error::Frame)?
        .len;
    let have = buf.len() - start;
    if usize::try_from(len).ok() != Some(have) {
        return Err(Error::Frame(wire::FrameError::Length { len, have }));
    }
    Ok(())
}
