//! The fault-injecting layer under the transport, and scripted kernels: what makes timeouts, lost
//! replies and reconnects testable without a kernel (and with one).
//!
//! A [`Faults`] handle in [`crate::Options::faults`] puts this layer between the transport and
//! every socket it opens: requests pass through it on their way out, replies on their way in.
//! Rules armed with [`Faults::inject`] pick a request (the n-th from now, or the next one whose
//! bytes contain a pattern, such as an address) and do to it what a kernel under stress does:
//! - [`Fault::NoReply`]: its answer never comes (the kernel executed it; the reply was lost), so
//!   the transport's deadline expires;
//! - [`Fault::Overflow`]: the receive buffer overflows: the answers to it and to the requests after
//!   it in the same datagram are dropped, and the next receive fails with `ENOBUFS`, as the kernel
//!   does (`netlink_overrun`).
//!
//! Underneath is the real kernel ([`Faults::new`]), or a [`Responder`] that answers each request
//! like a kernel would ([`Faults::scripted`]), for tests on machines without the subsystem.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::wire::{self, Message, NLM_F_ACK, NLM_F_REQUEST};

/// Which request a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The n-th request sent from the moment the rule is armed (0: the next one).
    Nth(usize),
    /// The next request whose bytes contain this sequence (e.g. an address in network order).
    Containing(Vec<u8>),
}

/// What happens to the request a rule picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Its reply never arrives.
    NoReply,
    /// Its reply and those of the later requests of its datagram are dropped; the next receive
    /// fails with `ENOBUFS`.
    Overflow,
}

/// Answers requests like a kernel: appends the reply messages for `request` to `out` (one
/// datagram per request). Control messages (`NLMSG_NOOP` with `NLM_F_ACK`) are acknowledged by
/// the scripted socket itself, as the kernel's `netlink_rcv_skb` does.
pub trait Responder: Send {
    /// Answers one request.
    fn respond(&mut self, request: Message<'_>, out: &mut Vec<u8>);
}

impl<F: FnMut(Message<'_>, &mut Vec<u8>) + Send> Responder for F {
    fn respond(&mut self, request: Message<'_>, out: &mut Vec<u8>) {
        self(request, out);
    }
}

type Kernel = dyn Fn(isize) -> Box<dyn Responder> + Send + Sync;

#[derive(Default)]
struct State {
    rules: Vec<(Match, Fault)>,
    /// Requests seen so far (every socket).
    sent: usize,
    /// Sockets opened so far.
    opened: usize,
    /// Requests each rule fired on, in order.
    fired: Vec<(usize, Fault)>,
    /// The largest datagram sent so far, in bytes.
    largest: usize,
    /// Datagrams sent so far.
    datagrams: usize,
}

/// A handle on the fault layer: arms rules and counts what passed. Clones share one state.
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    kernel: Option<Arc<Kernel>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("scripted", &self.kernel.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Faults {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

impl Faults {
    /// The layer over the real kernel's sockets.
    pub fn new() -> Self {
        Self::default()
    }

    /// The layer over scripted kernels: every socket opened gets a fresh responder from
    /// `kernel(protocol)` (share state between them through the closure to survive reconnects).
    pub fn scripted(kernel: impl Fn(isize) -> Box<dyn Responder> + Send + Sync + 'static) -> Self {
        Self {
            state: Arc::default(),
            kernel: Some(Arc::new(kernel)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms a one-shot rule.
    pub fn inject(&self, when: Match, fault: Fault) {
        let mut st = self.lock();
        let when = match when {
            Match::Nth(n) => Match::Nth(st.sent + n),
            other => other,
        };
        st.rules.push((when, fault));
    }

    /// Sockets opened through this layer so far (the first connection and every rebuild).
    pub fn opened(&self) -> usize {
        self.lock().opened
    }

    /// Requests sent through this layer so far.
    pub fn requests(&self) -> usize {
        self.lock().sent
    }

    /// The faults that fired, with the number of the request each hit.
    pub fn fired(&self) -> Vec<(usize, Fault)> {
        self.lock().fired.clone()
    }

    /// The largest datagram sent through this layer so far, in bytes.
    pub fn largest_datagram(&self) -> usize {
        self.lock().largest
    }

    /// Datagrams sent through this layer so far.
    pub fn datagrams(&self) -> usize {
        self.lock().datagrams
    }

    /// Rules armed that have not fired yet.
    pub fn armed(&self) -> usize {
        self.lock().rules.len()
    }

    pub(crate) fn scripted_kernel(&self, protocol: isize) -> Option<Box<dyn Responder>> {
        self.kernel.as_ref().map(|k| k(protocol))
    }

    pub(crate) fn note_open(&self) {
        self.lock().opened += 1;
    }

    /// Decides the fate of the requests of one outgoing datagram: records the sequence numbers
    /// whose replies are to be dropped in `conn`.
    pub(crate) fn outgoing(&self, datagram: &[u8], conn: &mut FaultyConn) {
        let mut st = self.lock();
        st.largest = st.largest.max(datagram.len());
        st.datagrams += 1;
        let mut overflowing = false;
        for msg in wire::messages(datagram).flatten() {
            let n = st.sent;
            st.sent += 1;
            let hit = st.rules.iter().position(|(when, _)| match when {
                Match::Nth(k) => *k == n,
                Match::Containing(pat) => {
                    !pat.is_empty() && msg.bytes.windows(pat.len()).any(|w| w == pat.as_slice())
                }
            });
            if let Some(i) = hit {
                let (_, fault) = st.rules.remove(i);
                st.fired.push((n, fault));
                overflowing |= fault == Fault::Overflow;
                conn.doomed.insert(msg.header.seq);
            }
            if overflowing {
                conn.doomed.insert(msg.header.seq);
                conn.overflow = true;
            }
        }
    }
}

/// Per-socket state of the fault layer.
#[derive(Debug, Default)]
pub(crate) struct FaultyConn {
    /// Replies of these sequence numbers are dropped.
    doomed: HashSet<u32>,
    /// The next receive fails with ENOBUFS.
    overflow: bool,
}

impl FaultyConn {
    /// Takes a pending ENOBUFS.
    pub(crate) fn take_overflow(&mut self) -> bool {
        std::mem::take(&mut self.overflow)
    }

    /// Drops the messages of doomed requests from a received datagram.
    pub(crate) fn filter(&self, datagram: &mut Vec<u8>) {
        if self.doomed.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(datagram.len());
        for msg in wire::messages(datagram).flatten() {
            if !self.doomed.contains(&msg.header.seq) {
                kept.extend_from_slice(msg.bytes);
                kept.resize(kept.len().saturating_add(3) & !3, 0);
            }
        }
        *datagram = kept;
    }
}

/// A socket answered by a [`Responder`] instead of the kernel.
pub(crate) struct Scripted {
    responder: Box<dyn Responder>,
    queue: VecDeque<Vec<u8>>,
}

impl Scripted {
    pub(crate) fn new(responder: Box<dyn Responder>) -> Self {
        Self {
            responder,
            queue: VecDeque::new(),
        }
    }

    /// Hands each request of the datagram to the responder; queues its answer.
    pub(crate) fn send(&mut self, datagram: &[u8]) {
        for msg in wire::messages(datagram).flatten() {
            let mut out = Vec::new();
            if msg.header.kind < 0x10 {
                // Control messages: acknowledged when asked, never seen by the protocol.
                if msg.header.flags & (NLM_F_REQUEST | NLM_F_ACK) == NLM_F_REQUEST | NLM_F_ACK {
                    wire::push_ack(&mut out, &msg.header, None);
                }
            } else {
                self.responder.respond(msg, &mut out);
            }
            if !out.is_empty() {
                self.queue.push_back(out);
            }
        }
    }

    /// The next queued datagram (truncated to `cap` bytes like a real socket), or `None`.
    pub(crate) fn recv(&mut self, cap: usize) -> Option<Vec<u8>> {
        let mut d = self.queue.pop_front()?;
        d.truncate(cap);
        Some(d)
    }
}
