//! Property tests: every message the codec can build decodes back to itself, and no byte string
//! makes a decoder panic.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_netlink::destination::DestinationAttribute;
use ipvs_netlink::frame::{self, FLAGS_ACK, ReplyBody};
use ipvs_netlink::service::ServiceAttribute;
use ipvs_netlink::stats::{StatsAttribute, StatsValue};
use ipvs_netlink::{
    AddressFamily, Destination, ForwardMethod, IpvsAttribute, IpvsCmd, IpvsMessage, Protocol,
    SchedulerName, Service, ServiceFlags, Stats, Timeouts, TunnelFlags, TunnelType,
    VirtualServiceKey,
};
use netlink_packet_core::DefaultNla;
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn key() -> impl Strategy<Value = VirtualServiceKey> {
    prop_oneof![
        (
            prop_oneof![
                Just(Protocol::Tcp),
                Just(Protocol::Udp),
                Just(Protocol::Sctp)
            ],
            ip(),
            any::<u16>()
        )
            .prop_map(|(protocol, addr, port)| VirtualServiceKey::Inet {
                protocol,
                addr,
                port
            }),
        (
            prop_oneof![Just(AddressFamily::Inet), Just(AddressFamily::Inet6)],
            1..=u32::MAX
        )
            .prop_map(|(family, mark)| VirtualServiceKey::Fwmark { family, mark }),
    ]
}

fn scheduler() -> impl Strategy<Value = SchedulerName> {
    "[!-~]{1,15}".prop_map(|s| SchedulerName::new(&s).unwrap())
}

fn service() -> impl Strategy<Value = Service> {
    (
        key(),
        scheduler(),
        0u32..64,
        any::<u32>(),
        any::<u8>(),
        proptest::option::of("[a-z]{1,15}"),
    )
        .prop_map(|(key, scheduler, flags, timeout, mask, pe_name)| {
            let mut s = Service::new(key, scheduler);
            // HASHED is kernel-owned: requests never carry it.
            s.flags = ServiceFlags::from_bits(flags).settable();
            s.timeout = timeout;
            s.netmask = mask % (key.family().max_prefix() + 1);
            s.pe_name = pe_name;
            s
        })
}

fn forward() -> impl Strategy<Value = ForwardMethod> {
    prop_oneof![
        Just(ForwardMethod::Masquerade),
        Just(ForwardMethod::Local),
        Just(ForwardMethod::DirectRoute),
        Just(ForwardMethod::IPIP),
        (any::<u16>(), any::<u16>()).prop_map(|(port, f)| ForwardMethod::Tunnel {
            kind: TunnelType::Gue,
            port,
            flags: TunnelFlags(f)
        }),
        any::<u16>().prop_map(|f| ForwardMethod::Tunnel {
            kind: TunnelType::Gre,
            port: 0,
            flags: TunnelFlags(f)
        }),
    ]
}

fn destination() -> impl Strategy<Value = Destination> {
    (
        ip(),
        any::<u16>(),
        forward(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(addr, port, fwd, w, u, l)| {
            let mut d = Destination::new(addr, port, fwd, w);
            d.upper_threshold = u;
            d.lower_threshold = l;
            d
        })
}

/// Encode with netlink framing, decode the datagram, return the single message.
fn through_wire(msg: &IpvsMessage) -> IpvsMessage {
    let mut buf = Vec::new();
    frame::encode(&mut buf, 0x24, FLAGS_ACK, 7, msg).unwrap();
    let mut it = frame::replies(&buf);
    let reply = it.next().unwrap().unwrap();
    assert!(it.next().is_none());
    assert_eq!(reply.seq, 7);
    match reply.body {
        ReplyBody::Message(m) => m,
        other => panic!("unexpected {other:?}"),
    }
}

proptest! {
    #[test]
    fn service_requests_round_trip(s in service()) {
        for msg in [IpvsMessage::new_service(&s), IpvsMessage::set_service(&s)] {
            let back = through_wire(&msg);
            prop_assert_eq!(&back, &msg);
            prop_assert_eq!(back.service().unwrap(), s.clone());
        }
        for msg in [IpvsMessage::del_service(&s.key), IpvsMessage::get_service(&s.key), IpvsMessage::dump_dests(&s.key), IpvsMessage::zero(Some(&s.key))] {
            let back = through_wire(&msg);
            prop_assert_eq!(&back, &msg);
        }
    }

    #[test]
    fn destination_requests_round_trip(k in key(), d in destination()) {
        for msg in [IpvsMessage::new_dest(&k, &d), IpvsMessage::set_dest(&k, &d)] {
            let back = through_wire(&msg);
            prop_assert_eq!(&back, &msg);
            prop_assert_eq!(back.destination(k.family()).unwrap(), d.clone());
        }
        let del = IpvsMessage::del_dest(&k, d.addr, d.port);
        prop_assert_eq!(through_wire(&del), del);
    }

    #[test]
    fn replies_with_stats_round_trip(s in service(), d in destination(), raw in any::<[u64; 10]>(), other in proptest::collection::vec(any::<u8>(), 0..12)) {
        let stats = Stats {
            conns: raw[0], inpkts: raw[1], outpkts: raw[2], inbytes: raw[3], outbytes: raw[4],
            cps: raw[5], inpps: raw[6], outpps: raw[7], inbps: raw[8], outbps: raw[9],
        };
        // A kernel-style reply: 32-bit STATS, STATS64, HASHED, and an attribute from the future.
        let mut svc = s.to_attributes();
        svc.push(ServiceAttribute::Stats(vec![StatsAttribute::Conns(StatsValue::U32(7)), StatsAttribute::InBytes(StatsValue::U64(9))]));
        svc.push(ServiceAttribute::Stats64(stats.to_attributes64()));
        svc.push(ServiceAttribute::Other(DefaultNla::new(99, other.clone())));
        let msg = IpvsMessage::new(IpvsCmd::NewService, vec![IpvsAttribute::Service(svc)]);
        let back = through_wire(&msg);
        prop_assert_eq!(&back, &msg);
        let mut expect = s.clone();
        expect.stats = Some(stats);
        prop_assert_eq!(back.service().unwrap(), expect);

        let mut dest = d.to_attributes();
        dest.push(DestinationAttribute::ActiveConns(3));
        dest.push(DestinationAttribute::InactiveConns(4));
        dest.push(DestinationAttribute::PersistentConns(5));
        dest.push(DestinationAttribute::Stats64(stats.to_attributes64()));
        dest.push(DestinationAttribute::Other(DefaultNla::new(42, other)));
        let msg = IpvsMessage::new(IpvsCmd::NewDest, vec![IpvsAttribute::Destination(dest)]);
        let back = through_wire(&msg);
        prop_assert_eq!(&back, &msg);
        let got = back.destination(s.key.family()).unwrap();
        prop_assert_eq!((got.active_conns, got.inactive_conns, got.persistent_conns, got.stats), (3, 4, 5, Some(stats)));
    }

    #[test]
    fn config_round_trips(tcp in any::<u32>(), tcp_fin in any::<u32>(), udp in any::<u32>()) {
        let t = Timeouts { tcp, tcp_fin, udp };
        let msg = IpvsMessage::set_config(&t);
        let back = through_wire(&msg);
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.timeouts(), t);
    }

    /// Any bytes: a value or an error, never a panic; and what decodes re-encodes stably.
    #[test]
    fn decoders_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for reply in frame::replies(&bytes) {
            if let Ok(frame::Reply { body: ReplyBody::Message(m), .. }) = reply {
                let _ = m.service();
                let _ = m.destination(AddressFamily::Inet6);
                let _ = m.info();
                let _ = m.daemon();
                let again = through_wire(&m);
                prop_assert_eq!(through_wire(&again), again);
            }
        }
        for cmd in [IpvsCmd::NewService, IpvsCmd::SetInfo, IpvsCmd::NewDaemon] {
            if let Ok(m) = IpvsMessage::parse_payload(&bytes, cmd) {
                let _ = m.service();
                let _ = m.destination(AddressFamily::Inet);
            }
        }
        let _ = ipvs_netlink::procfs::parse(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn info_attributes_decode_by_command() {
    // SET_INFO: VERSION(1)=0x010201, CONN_TAB_SIZE(2)=4096. As a SERVICE command the same bytes
    // would be a (malformed) service nest.
    let payload = [
        8, 0, 1, 0, 0x01, 0x02, 0x01, 0x00, 8, 0, 2, 0, 0, 0x10, 0, 0,
    ];
    let m = IpvsMessage::parse_payload(&payload, IpvsCmd::SetInfo).unwrap();
    let info = m.info().unwrap();
    assert_eq!((info.version, info.conn_tab_size), (0x010201, 4096));
    assert_eq!(info.version_triple(), (1, 2, 1));
    assert!(IpvsMessage::parse_payload(&payload, IpvsCmd::NewService).is_err());
}

/// Found by the `frame` fuzz target: an unknown attribute with both NLA_F_NESTED and
/// NLA_F_NET_BYTEORDER must keep both flags through decode and encode.
#[test]
fn unknown_attribute_flags_survive_a_round_trip() {
    for kind in [0xfffbu16, 0xb800, 0xf800, 0x4100, 0x8100] {
        let msg = IpvsMessage::new(
            IpvsCmd::GetDest,
            vec![
                IpvsAttribute::Service(vec![
                    ServiceAttribute::AddressFamily(2),
                    ServiceAttribute::Other(DefaultNla::new(kind, vec![6, 0])),
                ]),
                IpvsAttribute::Other(DefaultNla::new(kind, vec![])),
            ],
        );
        let back = through_wire(&msg);
        assert_eq!(back, msg, "kind {kind:#x}");
    }
}

#[test]
fn scheduler_validation() {
    assert!(SchedulerName::new("wlc").is_ok());
    assert!(SchedulerName::new("abcdefghijklmno").is_ok());
    assert!(SchedulerName::new("abcdefghijklmnop").is_err());
    assert!(SchedulerName::new("").is_err());
    assert!(SchedulerName::new("r r").is_err());
    assert!(SchedulerName::new("é").is_err());
}

#[test]
fn netmask_encoding() {
    use ipvs_netlink::service::{decode_netmask, encode_netmask};
    assert_eq!(encode_netmask(AddressFamily::Inet, 24), [255, 255, 255, 0]);
    assert_eq!(encode_netmask(AddressFamily::Inet, 32), [255; 4]);
    assert_eq!(encode_netmask(AddressFamily::Inet, 0), [0; 4]);
    assert_eq!(
        encode_netmask(AddressFamily::Inet6, 64),
        64u32.to_ne_bytes()
    );
    for p in 0..=32 {
        assert_eq!(
            decode_netmask(AddressFamily::Inet, encode_netmask(AddressFamily::Inet, p)).unwrap(),
            p
        );
    }
    assert!(decode_netmask(AddressFamily::Inet, [255, 0, 255, 0]).is_err());
    assert!(decode_netmask(AddressFamily::Inet6, 129u32.to_ne_bytes()).is_err());
}

#[test]
fn error_and_done_replies() {
    // NLMSG_ERROR -17 (EEXIST) for seq 5, then an ACK for seq 6, then NLMSG_DONE for seq 7.
    let mut buf = Vec::new();
    for (kind, seq, code) in [(2u16, 5u32, -17i32), (2, 6, 0), (3, 7, 0)] {
        let len: u32 = if kind == 2 { 36 } else { 20 };
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&code.to_ne_bytes());
        if kind == 2 {
            buf.extend_from_slice(&[0; 16]);
        }
    }
    let got: Vec<_> = frame::replies(&buf)
        .map(|r| r.unwrap())
        .map(|r| (r.seq, r.body))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, ReplyBody::Error(17)),
            (6, ReplyBody::Ack),
            (7, ReplyBody::Done)
        ]
    );
    // Truncated header: an error, then the iterator ends.
    let mut it = frame::replies(&buf[..10]);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn service_flags_debug_names_bits() {
    let f = ServiceFlags::PERSISTENT | ServiceFlags::SH_PORT | ServiceFlags::from_bits(0x100);
    assert_eq!(
        format!("{f:?}"),
        "ServiceFlags(PERSISTENT | SCHED2 | 0x100)"
    );
    assert!(f.contains(ServiceFlags::SCHED2));
    assert_eq!(
        (ServiceFlags::HASHED | ServiceFlags::ONEPACKET).settable(),
        ServiceFlags::ONEPACKET
    );
}
