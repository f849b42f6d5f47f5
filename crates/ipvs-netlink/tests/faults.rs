//! Faults under the IPVS client, without a kernel: a scripted IPVS (the transport's fault layer
//! over a responder that keeps a table like ip_vs does) loses one reply, or overflows the receive
//! buffer. The operation hit fails with a typed error, the socket is rebuilt, the operation can
//! be retried, and the other services' operations are not affected.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipvs_netlink::frame::{self, ReplyBody};
use ipvs_netlink::{
    Client, ClientOptions, Destination, Errno, Error, IpvsCmd, IpvsMessage, IpvsOp, SchedulerName,
    Service, VirtualServiceKey,
};
use netlink_packet_core::{NLM_F_MULTIPART, NetlinkMessage};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_transport::wire::{self, Message};
use netlink_transport::{Fault, Faults, Match};

const FAMILY: u16 = 0x24;

type Table = Arc<Mutex<BTreeMap<VirtualServiceKey, Vec<IpAddr>>>>;

/// A scripted IPVS: resolves as family 0x24, applies service and destination adds and deletes to
/// `table` with the kernel's errnos (EEXIST, ESRCH), and answers service dumps.
fn ipvs(table: Table) -> Faults {
    Faults::scripted(move |_| {
        let table = table.clone();
        Box::new(move |req: Message<'_>, out: &mut Vec<u8>| {
            if req.header.kind == 0x10 {
                let mut nl = NetlinkMessage::from(GenlMessage::from_payload(GenlCtrl {
                    cmd: GenlCtrlCmd::NewFamily,
                    nlas: vec![GenlCtrlAttrs::FamilyId(FAMILY)],
                }));
                nl.header.sequence_number = req.header.seq;
                nl.finalize();
                let mut b = vec![0; nl.buffer_len()];
                nl.serialize(&mut b);
                out.extend_from_slice(&b);
                wire::push_ack(out, &req.header, None);
                return;
            }
            assert_eq!(
                req.header.kind, FAMILY,
                "requests carry the resolved family id"
            );
            let Some(Ok(frame::Reply {
                body: ReplyBody::Message(m),
                ..
            })) = frame::replies(req.bytes).next()
            else {
                wire::push_ack(out, &req.header, Some(Errno::EINVAL));
                return;
            };
            let mut t = table.lock().unwrap();
            let key = m.service_key();
            let errno = match (m.cmd, key) {
                (IpvsCmd::NewService, Ok(k)) if t.contains_key(&k) => Some(Errno::EEXIST),
                (IpvsCmd::NewService, Ok(k)) => {
                    t.insert(k, Vec::new());
                    None
                }
                (IpvsCmd::SetService, Ok(k)) => (!t.contains_key(&k)).then_some(Errno::ESRCH),
                (IpvsCmd::DelService, Ok(k)) => t.remove(&k).is_none().then_some(Errno::ESRCH),
                (IpvsCmd::NewDest, Ok(k)) => {
                    let d = m.destination(k.family()).unwrap();
                    match t.get_mut(&k) {
                        None => Some(Errno::ESRCH),
                        Some(ds) if ds.contains(&d.addr) => Some(Errno::EEXIST),
                        Some(ds) => {
                            ds.push(d.addr);
                            None
                        }
                    }
                }
                (IpvsCmd::SetDest, Ok(k)) => (!t.contains_key(&k)).then_some(Errno::ESRCH),
                (IpvsCmd::GetService, _) => {
                    for k in t.keys() {
                        let msg = IpvsMessage::new_service(&Service::new(*k, SchedulerName::rr()));
                        let mut b = Vec::new();
                        frame::encode(&mut b, FAMILY, NLM_F_MULTIPART, req.header.seq, &msg)
                            .unwrap();
                        out.extend_from_slice(&b);
                    }
                    wire::push_done(out, &req.header);
                    return;
                }
                _ => Some(Errno::EINVAL),
            };
            wire::push_ack(out, &req.header, errno);
        })
    })
}

fn key(i: u8) -> VirtualServiceKey {
    VirtualServiceKey::tcp(IpAddr::from([10, 96, 0, i]), 80)
}

/// Services 1..=3, each with two destinations.
fn ops() -> Vec<IpvsOp> {
    let mut ops = Vec::new();
    for i in 1..=3 {
        ops.push(IpvsOp::AddService(Service::new(
            key(i),
            SchedulerName::rr(),
        )));
        for d in 1..=2 {
            ops.push(IpvsOp::AddDestination(
                key(i),
                Destination::masq(IpAddr::from([10, 244, i, d]), 8080, 1),
            ));
        }
    }
    ops
}

async fn client(faults: &Faults) -> Client {
    Client::with_options(ClientOptions {
        timeout: Duration::from_secs(2),
        faults: Some(faults.clone()),
        ..ClientOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_lost_reply_fails_that_operation_alone_with_a_timeout_and_the_socket_is_rebuilt() {
    let table = Table::default();
    let f = ipvs(table.clone());
    let mut c = client(&f).await;
    // The first request naming service 2's address: its AddService.
    f.inject(Match::Containing(vec![10, 96, 0, 2]), Fault::NoReply);
    let ops = ops();
    let results = c.apply(&ops).await;
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            assert!(
                matches!(
                    r,
                    Err(Error::Timeout {
                        op: "add service",
                        ..
                    })
                ),
                "{r:?}"
            );
            assert_eq!(r.as_ref().unwrap_err().errno(), Some(Errno::ETIMEDOUT));
        } else {
            assert!(r.is_ok(), "op {i}: {r:?}");
        }
    }
    // The kernel did apply it (only the answer was lost), and everything else.
    assert_eq!(table.lock().unwrap().len(), 3);
    assert!(table.lock().unwrap().values().all(|d| d.len() == 2));
    // The socket was rebuilt: the next request goes on a new one, resolving the family again.
    assert_eq!(c.list_services().await.unwrap().len(), 3);
    assert_eq!(f.opened(), 2);
    // Retrying the operation whose outcome was unknown tells what happened.
    let again = c.apply(&ops[3..4]).await;
    assert!(
        matches!(again[0], Err(Error::ServiceExists { .. })),
        "{again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn lost_replies_fail_only_the_operations_whose_answers_were_dropped() {
    let table = Table::default();
    let f = ipvs(table.clone());
    let mut c = client(&f).await;
    // The receive buffer overflows from service 3's AddService on: the answers to it and its two
    // destinations are dropped (they are the last three requests of the datagram).
    f.inject(Match::Containing(vec![10, 96, 0, 3]), Fault::Overflow);
    let ops = ops();
    let results = c.apply(&ops).await;
    for (i, r) in results.iter().enumerate() {
        if i >= 6 {
            assert!(matches!(r, Err(Error::RepliesLost { .. })), "op {i}: {r:?}");
            assert_eq!(r.as_ref().unwrap_err().errno(), Some(Errno::ENOBUFS));
        } else {
            assert!(r.is_ok(), "op {i}: {r:?}");
        }
    }
    // Found by the barrier, without waiting for a timeout: the socket is still good.
    assert_eq!(f.opened(), 1);
    // Retried, the operations are answered (the kernel had applied them).
    let again = c.apply(&ops[6..]).await;
    assert!(
        matches!(again[0], Err(Error::ServiceExists { .. })),
        "{again:?}"
    );
    assert!(
        matches!(again[1], Err(Error::DestinationExists { .. })),
        "{again:?}"
    );
    // A lost reply on a single request: typed, and the socket rebuilt.
    f.inject(Match::Nth(0), Fault::Overflow);
    let e = c
        .add_service(&Service::new(key(9), SchedulerName::rr()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::RepliesLost {
                op: "add service",
                ..
            }
        ),
        "{e}"
    );
    c.add_service(&Service::new(key(8), SchedulerName::rr()))
        .await
        .unwrap();
    assert_eq!(f.opened(), 2);
}
