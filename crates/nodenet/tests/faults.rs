//! Faults under the rtnetlink and ipset clients, without a kernel: scripted kernels (the
//! transport's fault layer over responders that keep state like the kernel) lose one reply or
//! overflow the receive buffer. The request hit fails with a typed error, the socket is rebuilt,
//! a retry succeeds, and the other requests of the batch are not affected.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressAttribute;
use netlink_transport::wire::{self, Message};
use netlink_transport::{Errno, Error, Failure, Fault, Faults, Match};
use nodenet::SocketOptions;
use nodenet::ipset::{Config, Entry, IpsetClient, IpsetError, Request};
use nodenet::link::Links;

type Bound = Arc<Mutex<BTreeSet<IpAddr>>>;

/// A scripted rtnetlink: RTM_NEWADDR binds (EEXIST when bound), RTM_DELADDR unbinds.
fn rtnetlink(bound: Bound) -> Faults {
    Faults::scripted(move |_| {
        let bound = bound.clone();
        Box::new(move |req: Message<'_>, out: &mut Vec<u8>| {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(req.bytes).unwrap();
            let addr = |m: &netlink_packet_route::address::AddressMessage| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(a) | AddressAttribute::Address(a) => Some(*a),
                    _ => None,
                })
            };
            let mut b = bound.lock().unwrap();
            let errno = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
                    (!b.insert(addr(&m).unwrap())).then_some(Errno::EEXIST)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
                    (!b.remove(&addr(&m).unwrap())).then_some(Errno::EADDRNOTAVAIL)
                }
                _ => Some(Errno::EOPNOTSUPP),
            };
            wire::push_ack(out, &req.header, errno);
        })
    })
}

fn opts(faults: &Faults) -> SocketOptions {
    SocketOptions {
        timeout: Duration::from_secs(2),
        faults: Some(faults.clone()),
        ..SocketOptions::default()
    }
}

fn vips(n: u8) -> Vec<IpAddr> {
    (1..=n).map(|i| IpAddr::from([10, 96, 0, i])).collect()
}

#[tokio::test(start_paused = true)]
async fn an_address_whose_answer_is_lost_fails_alone_and_binds_on_retry() {
    let bound = Bound::default();
    let f = rtnetlink(bound.clone());
    let mut links = Links::connect_with(&opts(&f)).await.unwrap();
    let addrs = vips(5);
    f.inject(Match::Containing(vec![10, 96, 0, 3]), Fault::NoReply);
    let out = links.bind(7, &addrs).await;
    assert_eq!(out.failed.len(), 1, "{out:?}");
    assert!(
        matches!(out.failed[0], (2, Failure::Lost(Error::Timeout(_)))),
        "{out:?}"
    );
    // The kernel bound all five; only the answer was lost.
    assert_eq!(bound.lock().unwrap().len(), 5);
    // The retry (the agent's next sync) succeeds on a new socket: bound already counts as done.
    links.add_addresses(7, &addrs[2..3]).await.unwrap();
    assert_eq!(f.opened(), 2);

    // Lost answers (ENOBUFS) from the fourth address on: those two fail, typed; the socket is
    // still good.
    let nets: Vec<_> = addrs.iter().map(|a| nodenet::link::host_net(*a)).collect();
    f.inject(Match::Containing(vec![10, 96, 0, 4]), Fault::Overflow);
    let out = links.unbind(7, &nets).await;
    let lost: Vec<usize> = out
        .failed
        .iter()
        .filter(|(_, f)| matches!(f, Failure::Lost(Error::RepliesLost)))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(lost, [3, 4], "{out:?}");
    assert_eq!(out.failed.len(), 2);
    assert!(bound.lock().unwrap().is_empty());
    // Retried, they are answered (gone already counts as done).
    links.remove_addresses(7, &nets[3..]).await.unwrap();
    assert_eq!(f.opened(), 2);
}

type Sets = Arc<Mutex<Vec<(String, Entry)>>>;

/// A scripted ipset: speaks protocol 7 and keeps the members of ADT requests.
fn ipset(members: Sets) -> Faults {
    Faults::scripted(move |_| {
        let members = members.clone();
        Box::new(move |req: Message<'_>, out: &mut Vec<u8>| {
            match Request::parse(req.bytes).map(|(_, r)| r) {
                Ok(Request::Protocol) => {
                    let mut reply = Request::Protocol.emit(req.header.seq, 7).unwrap();
                    // The kernel's answer has the request's layout: PROTOCOL 7.
                    reply[6..8].copy_from_slice(&0u16.to_ne_bytes());
                    out.extend_from_slice(&reply);
                    wire::push_ack(out, &req.header, None);
                }
                Ok(Request::Adt {
                    name, members: m, ..
                }) => {
                    let mut all = members.lock().unwrap();
                    all.extend(m.into_iter().map(|m| (name.clone(), m.entry)));
                    wire::push_ack(out, &req.header, None);
                }
                _ => wire::push_ack(out, &req.header, Some(Errno::EOPNOTSUPP)),
            }
        })
    })
}

fn entries(set: u8, n: u16) -> Vec<Entry> {
    (1..=n)
        .map(|p| Entry::IpPort {
            ip: IpAddr::from([10, 96, 0, set]),
            proto: nodenet::ipset::Protocol::Tcp,
            port: p,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_set_whose_answer_is_lost_fails_with_a_timeout_and_the_other_set_is_untouched() {
    let members = Sets::default();
    let f = ipset(members.clone());
    let mut c = IpsetClient::connect_with(Config {
        timeout: Duration::from_secs(2),
        faults: Some(f.clone()),
        ..Config::default()
    })
    .await
    .unwrap();
    f.inject(Match::Containing(b"KUBE-B".to_vec()), Fault::NoReply);
    let e = c.add_batch("KUBE-B", &entries(2, 3)).await.unwrap_err();
    assert!(matches!(e, IpsetError::Timeout { .. }), "{e}");
    assert_eq!(e.errno(), Some(Errno::ETIMEDOUT));
    c.add_batch("KUBE-A", &entries(1, 3)).await.unwrap();
    // Rebuilt, and the retry is answered.
    c.add_batch("KUBE-B", &entries(2, 3)).await.unwrap();
    assert_eq!(f.opened(), 2);
    assert_eq!(
        members.lock().unwrap().len(),
        9,
        "B twice (idempotent), A once"
    );

    // Per entry: 2,000 entries take two batch messages; the second's answer is dropped.
    let many = entries(3, 2000);
    let items: Vec<(&Entry, Option<&str>)> = many.iter().map(|e| (e, None)).collect();
    f.inject(Match::Nth(1), Fault::Overflow);
    let out = c
        .batch_each("KUBE-C", &[(nodenet::ipset::AdtOp::Add, &items)])
        .await
        .unwrap();
    let first_lost = out.failed.first().map(|(i, _)| *i).unwrap();
    assert!(
        first_lost > 0,
        "the first message's entries are answered: {first_lost}"
    );
    assert_eq!(out.failed.len(), 2000 - first_lost);
    assert!(
        out.failed
            .iter()
            .all(|(_, f)| matches!(f, Failure::Lost(Error::RepliesLost)))
    );
}

/// A scripted nf_tables: NFT_MSG_DELTABLE deletes a table it has (ENOENT otherwise) and
/// answers only what asks for an ACK, as nfnetlink does; BEGIN and END pass unanswered.
fn nftables(tables: Arc<Mutex<BTreeSet<String>>>, refuse: Option<Errno>) -> Faults {
    Faults::scripted(move |_| {
        let tables = tables.clone();
        Box::new(move |req: Message<'_>, out: &mut Vec<u8>| {
            if req.header.kind != (10 << 8 | 2) {
                return; // batch begin / end
            }
            // nfgenmsg (4 bytes), then NFTA_TABLE_NAME: length, type, name, NUL.
            let name = req.payload().get(8..).unwrap_or_default();
            let name = String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap());
            let errno = refuse.or_else(|| {
                (!tables.lock().unwrap().remove(name.as_ref())).then_some(Errno::ENOENT)
            });
            wire::push_ack(out, &req.header, errno);
        })
    })
}

#[tokio::test(start_paused = true)]
async fn nft_delete_table_reports_gone_missing_refused_and_unanswered() {
    use nodenet::nft::{NftFamily, delete_table};
    let tables = Arc::new(Mutex::new(BTreeSet::from(["kube-proxy".to_owned()])));
    let f = nftables(tables.clone(), None);
    assert!(
        delete_table(NftFamily::Ip, "kube-proxy", &opts(&f))
            .await
            .unwrap()
    );
    assert!(tables.lock().unwrap().is_empty());
    assert!(
        !delete_table(NftFamily::Ip, "kube-proxy", &opts(&f))
            .await
            .unwrap()
    );

    let f = nftables(tables.clone(), Some(Errno::EPERM));
    let e = delete_table(NftFamily::Ip6, "kube-proxy", &opts(&f))
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EPERM));
    assert!(
        e.to_string().starts_with("delete table ip6 kube-proxy: "),
        "{e}"
    );

    let f = nftables(tables, None);
    f.inject(Match::Nth(1), Fault::NoReply);
    let e = delete_table(NftFamily::Ip, "kube-proxy", &opts(&f))
        .await
        .unwrap_err();
    assert!(matches!(e.errno(), Some(Errno::ETIMEDOUT)), "{e}");
}
