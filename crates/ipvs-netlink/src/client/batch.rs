//! Pipelined application of many operations: many requests per `sendmsg`, each with its own
//! sequence number, replies matched back by sequence, a bounded number in flight.

use std::io;

use crate::client::{Client, Error, Op};
use crate::frame::{FLAGS_ACK, ReplyBody, encode, replies};

/// Requests per datagram: well under the default socket send buffer.
const MAX_SEND: usize = 48 * 1024;
const ENOBUFS: i32 = 105;

/// The same connection-level error for another operation (errors are not `Clone`).
fn for_op(e: &Error, op: &Op) -> Error {
    match e {
        Error::ModuleNotLoaded => Error::ModuleNotLoaded,
        Error::PermissionDenied { .. } => Error::PermissionDenied { op: op.name() },
        Error::Timeout { after, .. } => Error::Timeout {
            op: op.name(),
            after: *after,
        },
        other => Error::Io {
            op: op.name(),
            source: io::Error::other(other.to_string()),
        },
    }
}

struct State<'a> {
    ops: &'a [Op],
    results: Vec<Option<Result<(), Error>>>,
    /// Ops before this index are all resolved.
    low: usize,
    inflight: usize,
}

impl State<'_> {
    fn resolve(&mut self, i: usize, r: Result<(), Error>) {
        if let Some(slot @ None) = self.results.get_mut(i) {
            *slot = Some(r);
            self.inflight = self.inflight.saturating_sub(1);
        }
    }

    /// Every unresolved op up to and including `i` succeeded (a later ACK proves it).
    fn resolve_through(&mut self, i: usize) {
        for j in self.low..=i.min(self.results.len().saturating_sub(1)) {
            self.resolve(j, Ok(()));
        }
    }

    /// Every sent, unresolved op (before `next`) failed with `make`.
    fn fail_inflight(&mut self, next: usize, make: impl Fn(&Op) -> Error) {
        for j in self.low..next {
            if let Some(op) = self.ops.get(j) {
                let e = make(op);
                self.resolve(j, Err(e));
            }
        }
        self.inflight = 0;
    }

    fn advance_low(&mut self) {
        while self.results.get(self.low).is_some_and(Option::is_some) {
            self.low += 1;
        }
    }
}

pub(crate) async fn apply(client: &mut Client, ops: &[Op]) -> Vec<Result<(), Error>> {
    let n = ops.len();
    let mut st = State {
        ops,
        results: (0..n).map(|_| None).collect(),
        low: 0,
        inflight: 0,
    };
    for (i, op) in ops.iter().enumerate() {
        if let (Err(e), Some(slot)) = (op.validate(), st.results.get_mut(i)) {
            *slot = Some(Err(e));
        }
    }
    let window = client.opts.window.max(1);
    let timeout = client.opts.timeout;
    let every = client.opts.ack_every_op;
    let base = client.next_seqs(n);
    let index_of = |seq: u32| {
        usize::try_from(seq.wrapping_sub(base))
            .ok()
            .filter(|i| *i < n)
    };
    let mut next = 0;
    let mut sendbuf = Vec::with_capacity(MAX_SEND + 1024);
    st.advance_low();
    while st.low < n {
        if client.conn.is_none()
            && let Err(e) = client.reconnect().await
        {
            for (j, op) in ops.iter().enumerate().skip(st.low) {
                st.resolve(j, Err(for_op(&e, op)));
            }
            break;
        }
        // Fill a datagram with requests, up to the window.
        sendbuf.clear();
        let mut last_sent = None;
        while let Some(op) = ops
            .get(next)
            .filter(|_| st.inflight < window && sendbuf.len() < MAX_SEND)
        {
            if st.results.get(next).is_some_and(Option::is_none) {
                let flags = if every {
                    FLAGS_ACK
                } else {
                    netlink_packet_core::NLM_F_REQUEST
                };
                let seq = base.wrapping_add(u32::try_from(next).unwrap_or(u32::MAX));
                let start = sendbuf.len();
                match encode(&mut sendbuf, client.family_id, flags, seq, &op.message()) {
                    Ok(()) => {
                        st.inflight += 1;
                        last_sent = Some((start, next));
                    }
                    Err(e) => {
                        st.resolve(
                            next,
                            Err(Error::InvalidArgument {
                                op: op.name(),
                                target: op.target(),
                                reason: e.to_string(),
                            }),
                        );
                        st.inflight += 1; // resolve() decremented it
                    }
                }
            }
            next += 1;
        }
        if let Some((start, _)) = last_sent.filter(|_| !every) {
            // The datagram's last request carries the ACK that closes it.
            if let Some(flags) = sendbuf.get_mut(start + 6..start + 8) {
                flags.copy_from_slice(&FLAGS_ACK.to_ne_bytes());
            }
        }
        let Some(conn) = client.conn.as_mut() else {
            continue;
        };
        if !sendbuf.is_empty() {
            let sent = tokio::time::timeout(timeout, conn.send(&sendbuf)).await;
            let err = match sent {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(io::Error::from(io::ErrorKind::TimedOut)),
            };
            if let Some(e) = err {
                let msg = e.to_string();
                st.fail_inflight(next, |op| Error::Io {
                    op: op.name(),
                    source: io::Error::new(e.kind(), msg.clone()),
                });
                client.conn = None;
                st.advance_low();
                continue;
            }
        }
        if st.inflight == 0 {
            st.advance_low();
            continue;
        }
        // Read at least one datagram of replies.
        let got = tokio::time::timeout(timeout, conn.recv()).await;
        match got {
            Ok(Ok(data)) => {
                for reply in replies(data) {
                    match reply {
                        Ok(r) => {
                            let Some((i, op)) =
                                index_of(r.seq).and_then(|i| ops.get(i).map(|op| (i, op)))
                            else {
                                continue;
                            };
                            match r.body {
                                ReplyBody::Ack => {
                                    if every {
                                        st.resolve(i, Ok(()));
                                    } else {
                                        st.resolve_through(i);
                                    }
                                }
                                ReplyBody::Error(errno) => {
                                    let e = op.error(errno);
                                    st.resolve(i, Err(e));
                                    if !every {
                                        // Requests run in order and replies queue in order: any
                                        // reply to `i` proves the silent ones before it succeeded.
                                        st.resolve_through(i);
                                    }
                                }
                                _ => {}
                            }
                        }
                        Err(e) => {
                            if let Some((i, op)) = e
                                .seq
                                .and_then(index_of)
                                .and_then(|i| ops.get(i).map(|op| (i, op)))
                            {
                                st.resolve(
                                    i,
                                    Err(Error::Decode {
                                        op: op.name(),
                                        source: e.error,
                                    }),
                                );
                            }
                        }
                    }
                }
            }
            Ok(Err(e)) if e.raw_os_error() == Some(ENOBUFS) => {
                st.fail_inflight(next, |op| Error::RepliesLost {
                    op: op.name(),
                    target: op.target(),
                });
                client.conn = None;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                st.fail_inflight(next, |op| Error::Io {
                    op: op.name(),
                    source: io::Error::new(e.kind(), msg.clone()),
                });
                client.conn = None;
            }
            Err(_) => {
                st.fail_inflight(next, |op| Error::Timeout {
                    op: op.name(),
                    after: timeout,
                });
                client.conn = None;
            }
        }
        st.advance_low();
    }
    st.results
        .into_iter()
        .zip(ops)
        .map(|(r, op)| {
            r.unwrap_or_else(|| {
                Err(Error::Io {
                    op: op.name(),
                    source: io::Error::other("operation was not run"),
                })
            })
        })
        .collect()
}
