//! The transport against scripted kernels, with and without injected faults: what each request
//! gets back, when the socket is rebuilt, and that a fault costs only the requests it hits.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netlink_transport::wire::{
    self, Header, Message, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART,
};
use netlink_transport::{
    Ack, BatchOptions, DumpPart, Errno, Error, Failure, Fault, Faults, Match, Options, Transport,
};

/// The test protocol's request: a header and one payload byte, the request's number.
const KIND: u16 = 0x20;

fn request(buf: &mut Vec<u8>, n: u8, flags: u16) {
    let start = buf.len();
    Header {
        len: 0,
        kind: KIND,
        flags,
        seq: 0,
        pid: 0,
    }
    .emit(buf);
    buf.extend_from_slice(&[n, 0, 0, 0]);
    wire::finish(buf, start).unwrap();
}

/// A kernel that refuses requests whose number is a multiple of 7 (EEXIST), answers dumps with
/// three messages (flagged interrupted the first `interrupt` times), and records every request.
#[derive(Clone, Default)]
struct Kernel {
    seen: Arc<Mutex<Vec<u8>>>,
    interrupt: Arc<Mutex<usize>>,
}

impl Kernel {
    fn faults(&self) -> Faults {
        let k = self.clone();
        Faults::scripted(move |_| {
            let k = k.clone();
            Box::new(move |req: Message<'_>, out: &mut Vec<u8>| k.answer(req, out))
        })
    }

    fn answer(&self, req: Message<'_>, out: &mut Vec<u8>) {
        let n = req.payload().first().copied().unwrap_or(0);
        self.seen.lock().unwrap().push(n);
        if req.header.flags & NLM_F_DUMP != 0 {
            let mut intr = self.interrupt.lock().unwrap();
            let flags = NLM_F_MULTIPART | if *intr > 0 { NLM_F_DUMP_INTR } else { 0 };
            *intr = intr.saturating_sub(1);
            for i in 0..3u8 {
                wire::push_data(out, &req.header, KIND, flags, &[i]);
            }
            wire::push_done(out, &req.header);
            return;
        }
        let refused = n % 7 == 0;
        if refused || req.header.flags & wire::NLM_F_ACK != 0 {
            wire::push_ack(out, &req.header, refused.then_some(Errno::EEXIST));
        }
    }
}

async fn connect(faults: &Faults) -> Transport {
    Transport::connect(Options {
        timeout: Duration::from_secs(5),
        faults: Some(faults.clone()),
        ..Options::new(netlink_transport::NETLINK_GENERIC)
    })
    .await
    .unwrap()
}

fn opts(ack: Ack, window: usize) -> BatchOptions {
    BatchOptions {
        window,
        ack,
        // 5 requests of 20 bytes per datagram
        max_datagram: 100,
        keep_echo: false,
    }
}

fn refused(out: &netlink_transport::BatchOutcome) -> Vec<usize> {
    out.failed
        .iter()
        .filter(|(_, f)| {
            matches!(
                f,
                Failure::Refused {
                    errno: Errno::EEXIST,
                    ..
                }
            )
        })
        .map(|(i, _)| *i)
        .collect()
}

async fn run_batch(
    t: &mut Transport,
    n: usize,
    o: &BatchOptions,
) -> netlink_transport::BatchOutcome {
    t.batch(n, o, |i, buf| {
        request(buf, u8::try_from(i).unwrap(), 0);
        Ok::<_, std::io::Error>(())
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn batch_failures_are_matched_to_their_requests_in_both_ack_modes() {
    for ack in [Ack::Every, Ack::LastPerDatagram] {
        let k = Kernel::default();
        let f = k.faults();
        let mut t = connect(&f).await;
        let out = run_batch(&mut t, 60, &opts(ack, 8)).await;
        assert_eq!(out.failed.len(), 9, "{ack:?}: {out:?}");
        assert_eq!(
            refused(&out),
            (0..60).step_by(7).collect::<Vec<_>>(),
            "{ack:?}"
        );
        assert_eq!(k.seen.lock().unwrap().len(), 60, "each request sent once");
        assert_eq!(f.opened(), 1);
    }
}

/// Found at 10,000 Services: three 64 KiB ipset messages left room under the limit, so a fourth
/// was packed too, and `sendmsg` refused the datagram (EMSGSIZE) on every retry.
#[tokio::test(start_paused = true)]
async fn a_datagram_never_exceeds_the_limit_a_request_that_does_not_fit_opens_the_next() {
    for max_datagram in [90, 100, 119] {
        let k = Kernel::default();
        let f = k.faults();
        let mut t = connect(&f).await;
        let o = BatchOptions {
            max_datagram,
            ..opts(Ack::Every, 64)
        };
        let out = run_batch(&mut t, 30, &o).await;
        assert_eq!(refused(&out), (0..30).step_by(7).collect::<Vec<_>>());
        assert_eq!(k.seen.lock().unwrap().len(), 30, "each request sent once");
        assert!(
            f.largest_datagram() <= max_datagram,
            "limit {max_datagram}: a datagram of {} bytes",
            f.largest_datagram()
        );
    }
    // A request larger than the limit still goes, alone.
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    let o = BatchOptions {
        max_datagram: 10,
        ..opts(Ack::Every, 64)
    };
    let out = run_batch(&mut t, 3, &o).await;
    assert_eq!(refused(&out), [0]);
    assert_eq!(f.largest_datagram(), 20);
}

/// With an ACK per request, answers arrive one by one: the window is refilled once half of it is
/// free, with as many requests as fit, not one request per datagram per answer (which made
/// binding 20,000 addresses 40% slower than `ip -batch` allowed).
#[tokio::test(start_paused = true)]
async fn the_window_is_refilled_by_halves_not_one_request_per_answer() {
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    let o = BatchOptions {
        max_datagram: 64 * 1024,
        ..opts(Ack::Every, 16)
    };
    let out = run_batch(&mut t, 200, &o).await;
    assert_eq!(refused(&out), (0..200).step_by(7).collect::<Vec<_>>());
    assert_eq!(k.seen.lock().unwrap().len(), 200, "each request sent once");
    // 16, then 8 at a time: 1 + 184 / 8 datagrams (topping up sent 185).
    assert_eq!(f.datagrams(), 24);
}

#[tokio::test(start_paused = true)]
async fn a_request_without_reply_times_out_alone_and_the_socket_is_rebuilt() {
    for ack in [Ack::Every, Ack::LastPerDatagram] {
        let k = Kernel::default();
        let f = k.faults();
        let mut t = connect(&f).await;
        // Every request has an answer to lose; without an ACK each, only the last one does.
        let victim = if ack == Ack::Every { 11 } else { 29 };
        f.inject(Match::Nth(victim), Fault::NoReply);
        let out = run_batch(&mut t, 30, &opts(ack, 8)).await;
        let lost: Vec<usize> = out
            .failed
            .iter()
            .filter(|(_, f)| matches!(f, Failure::Lost(Error::Timeout(_))))
            .map(|(i, _)| *i)
            .collect();
        match ack {
            // Only the request whose reply never came.
            Ack::Every => assert_eq!(lost, [11], "{out:?}"),
            // The silent requests of its datagram share its fate (nothing proves them done).
            Ack::LastPerDatagram => {
                assert!(
                    lost.contains(&29) && lost.iter().all(|i| *i >= 25),
                    "{out:?}"
                );
            }
        }
        assert_eq!(
            refused(&out),
            [0, 7, 14, 21, 28]
                .iter()
                .copied()
                .filter(|i| !lost.contains(i))
                .collect::<Vec<_>>()
        );
        // Every request reached the kernel exactly once: the rest went on after the timeout.
        assert_eq!(k.seen.lock().unwrap().len(), 30);
        // The next request opens a new socket.
        t.request(
            0,
            |b| {
                request(b, 1, 0);
                Ok::<_, Error>(())
            },
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert!(f.opened() == 2, "{ack:?}: opened {}", f.opened());
    }
}

#[tokio::test(start_paused = true)]
async fn lost_replies_cost_only_the_requests_whose_answers_were_dropped() {
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    // Requests 0..5 go in the first datagram: 3 and 4 lose their answers.
    f.inject(Match::Nth(3), Fault::Overflow);
    let out = run_batch(&mut t, 20, &opts(Ack::Every, 8)).await;
    let lost: Vec<usize> = out
        .failed
        .iter()
        .filter(|(_, f)| matches!(f, Failure::Lost(Error::RepliesLost)))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(lost, [3, 4], "{out:?}");
    assert_eq!(refused(&out), [0, 7, 14]);
    assert_eq!(k.seen.lock().unwrap().len(), 20);
    // The barrier found them without waiting for a timeout, on the same socket.
    assert_eq!(f.opened(), 1);

    // Without an ACK per request, silence proves nothing: the whole window is lost and the
    // socket rebuilt; the requests not yet sent still go.
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    f.inject(Match::Nth(3), Fault::Overflow);
    let out = run_batch(&mut t, 20, &opts(Ack::LastPerDatagram, 8)).await;
    assert!(
        out.failed
            .iter()
            .any(|(i, f)| *i == 3 && matches!(f, Failure::Lost(Error::RepliesLost)))
    );
    assert!(
        out.failed
            .iter()
            .all(|(i, f)| *i < 8 || matches!(f, Failure::Refused { .. })),
        "{out:?}"
    );
    assert_eq!(
        refused(&out)
            .into_iter()
            .filter(|i| *i >= 8)
            .collect::<Vec<_>>(),
        [14]
    );
    assert_eq!(f.opened(), 2, "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_encoded_fails_alone() {
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    let out = t
        .batch(10, &opts(Ack::Every, 4), |i, buf| {
            if i == 4 {
                return Err(std::io::Error::other("too large"));
            }
            request(buf, u8::try_from(i).unwrap(), 0);
            Ok(())
        })
        .await;
    assert_eq!(out.failed.len(), 3);
    assert!(matches!(
        out.failed[1],
        (4, Failure::NotSent(Error::Encode(_)))
    ));
    assert_eq!(refused(&out), [0, 7]);
}

#[tokio::test(start_paused = true)]
async fn requests_get_their_answer_or_the_kernels_errno_and_timeouts_rebuild() {
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    let one = |n: u8| {
        move |b: &mut Vec<u8>| {
            request(b, n, 0);
            Ok::<_, Error>(())
        }
    };
    t.request(0, one(1), |_| Ok(())).await.unwrap();
    let e = t.request(0, one(7), |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, Error::Kernel(Errno::EEXIST)), "{e}");
    assert!(t.is_open(), "a refusal does not break the socket");
    f.inject(Match::Nth(0), Fault::NoReply);
    let e = t.request(0, one(2), |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert_eq!(e.errno(), Some(Errno::ETIMEDOUT));
    assert!(!t.is_open());
    t.request(0, one(3), |_| Ok(())).await.unwrap();
    assert_eq!(f.opened(), 2);
    // Lost replies on a single request: ENOBUFS, typed, and a new socket.
    f.inject(Match::Nth(0), Fault::Overflow);
    let e = t.request(0, one(4), |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, Error::RepliesLost), "{e}");
    t.request(0, one(5), |_| Ok(())).await.unwrap();
    assert_eq!(f.opened(), 3);
}

/// An nfnetlink-style transaction: three messages in one datagram, only the middle one asking for
/// an ACK. It succeeds on that ACK; an error answering any of the three fails it; a reply that
/// never comes times out and rebuilds the socket.
#[tokio::test(start_paused = true)]
async fn a_transaction_goes_in_one_datagram_and_any_error_in_it_fails_it() {
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    let three = |a: u8, b: u8, c: u8| {
        move |buf: &mut Vec<u8>| {
            request(buf, a, 0);
            request(buf, b, wire::NLM_F_ACK);
            request(buf, c, 0);
            Ok::<_, Error>(())
        }
    };
    t.transaction(three(1, 2, 3)).await.unwrap();
    assert_eq!(*k.seen.lock().unwrap(), [1, 2, 3]);
    assert_eq!(f.largest_datagram(), 3 * 20, "one datagram");
    // The kernel answers a batch's messages at its end, in order: an error after the last
    // requested ACK is not waited for (nfnetlink's BATCH_END never fails).
    for refused in [three(7, 2, 3), three(1, 14, 3)] {
        let e = t.transaction(refused).await.unwrap_err();
        assert!(matches!(e, Error::Kernel(Errno::EEXIST)), "{e}");
    }
    assert!(t.is_open(), "a refusal does not break the socket");
    // A lost ACK.
    f.inject(Match::Nth(1), Fault::NoReply);
    let e = t.transaction(three(4, 5, 6)).await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(!t.is_open());
    t.transaction(three(8, 9, 10)).await.unwrap();
    assert_eq!(f.opened(), 2);
}

async fn dump(t: &mut Transport) -> Result<Vec<u8>, Error> {
    let mut got = Vec::new();
    t.dump(
        |b| {
            request(b, 1, 0);
            Ok::<_, Error>(())
        },
        |part| {
            match part {
                DumpPart::Message(m) => got.push(m.payload()[0]),
                DumpPart::Restart => got.clear(),
            }
            Ok(())
        },
    )
    .await?;
    Ok(got)
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_dump_is_redone_and_a_restless_one_fails() {
    let k = Kernel::default();
    let f = k.faults();
    let mut t = connect(&f).await;
    *k.interrupt.lock().unwrap() = 2;
    assert_eq!(dump(&mut t).await.unwrap(), [0, 1, 2]);
    assert_eq!(k.seen.lock().unwrap().len(), 3, "sent three times");
    *k.interrupt.lock().unwrap() = 3;
    let e = dump(&mut t).await.unwrap_err();
    assert!(matches!(e, Error::DumpInterrupted(3)), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_generic_netlink_family_is_resolved_on_every_socket() {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_generic::GenlMessage;
    use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
    use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};

    let kinds = Arc::new(Mutex::new(Vec::new()));
    let k2 = kinds.clone();
    let f = Faults::scripted(move |_| {
        let kinds = k2.clone();
        Box::new(move |req: Message<'_>, out: &mut Vec<u8>| {
            kinds.lock().unwrap().push(req.header.kind);
            if req.header.kind != 0x10 {
                wire::push_ack(out, &req.header, None);
                return;
            }
            let mut nl = NetlinkMessage::from(GenlMessage::from_payload(GenlCtrl {
                cmd: GenlCtrlCmd::NewFamily,
                nlas: vec![
                    GenlCtrlAttrs::FamilyName("IPVS".into()),
                    GenlCtrlAttrs::FamilyId(0x24),
                ],
            }));
            nl.header.sequence_number = req.header.seq;
            nl.finalize();
            let mut b = vec![0; nl.buffer_len()];
            nl.serialize(&mut b);
            out.extend_from_slice(&b);
            wire::push_ack(out, &req.header, None);
            let _ = NetlinkPayload::<GenlMessage<GenlCtrl>>::Done(Default::default());
        })
    });
    let mut t = Transport::connect(Options {
        genl_family: Some("IPVS"),
        faults: Some(f.clone()),
        ..Options::new(netlink_transport::NETLINK_GENERIC)
    })
    .await
    .unwrap();
    assert_eq!(t.family_id(), 0x24);
    let out = run_batch(&mut t, 3, &opts(Ack::Every, 8)).await;
    assert!(out.is_ok());
    f.inject(Match::Nth(0), Fault::NoReply);
    assert!(
        t.request(
            0,
            |b| {
                request(b, 1, 0);
                Ok::<_, Error>(())
            },
            |_| Ok(())
        )
        .await
        .is_err()
    );
    t.request(
        0,
        |b| {
            request(b, 1, 0);
            Ok::<_, Error>(())
        },
        |_| Ok(()),
    )
    .await
    .unwrap();
    // nlctrl, 3 requests as IPVS, the lost one, nlctrl again, the last one.
    assert_eq!(
        *kinds.lock().unwrap(),
        [0x10, 0x24, 0x24, 0x24, 0x24, 0x10, 0x24]
    );

    // A family the kernel does not know.
    let f = Faults::scripted(|_| {
        Box::new(|req: Message<'_>, out: &mut Vec<u8>| {
            wire::push_ack(out, &req.header, Some(Errno::ENOENT));
        })
    });
    let e = Transport::connect(Options {
        genl_family: Some("IPVS"),
        faults: Some(f),
        ..Options::new(netlink_transport::NETLINK_GENERIC)
    })
    .await
    .unwrap_err();
    assert!(matches!(e, Error::NoFamily("IPVS")), "{e}");
}
