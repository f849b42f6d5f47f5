//! Property tests: emit -> parse is the identity for every request, and the decoders are
//! total (arbitrary bytes yield an error or a value, never a panic).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;

use crate::AddressFamily;
use crate::ipset::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (ip(), any::<u8>()).prop_map(|(ip, len)| {
        let max = if ip.is_ipv4() { 33 } else { 129 };
        IpNet::new(ip, len % max).unwrap().trunc()
    })
}

fn proto() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp),
        any::<u8>().prop_map(Protocol::from_number)
    ]
}

pub(crate) fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        ip().prop_map(Entry::Ip),
        (ip(), proto(), any::<u16>()).prop_map(|(ip, proto, port)| Entry::IpPort {
            ip,
            proto,
            port
        }),
        (ip(), proto(), any::<u16>(), ip()).prop_map(|(ip, proto, port, ip2)| Entry::IpPortIp {
            ip,
            proto,
            port,
            ip2
        }),
        (ip(), proto(), any::<u16>(), net()).prop_map(|(ip, proto, port, net)| Entry::IpPortNet {
            ip,
            proto,
            port,
            net
        }),
        net().prop_map(Entry::Net),
        any::<u16>().prop_map(Entry::Port),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,31}"
}

fn member() -> impl Strategy<Value = Member> {
    (entry(), proptest::option::of("[ -~]{0,255}"))
        .prop_map(|(entry, comment)| Member { entry, comment })
}

fn set_type() -> impl Strategy<Value = SetType> {
    prop_oneof![
        Just(SetType::HashIp),
        Just(SetType::HashIpPort),
        Just(SetType::HashIpPortIp),
        Just(SetType::HashIpPortNet),
        Just(SetType::HashNet),
        Just(SetType::BitmapPort),
    ]
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::Inet), Just(AddressFamily::Inet6)]
}

fn create_spec() -> impl Strategy<Value = CreateSpec> {
    (
        name(),
        set_type(),
        family(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of((any::<u16>(), any::<u16>())),
        any::<bool>(),
    )
        .prop_map(
            |(name, set_type, family, hashsize, maxelem, port_range, comment)| {
                let family = if set_type == SetType::BitmapPort {
                    None
                } else {
                    Some(family)
                };
                CreateSpec {
                    name,
                    set_type,
                    family,
                    hashsize,
                    maxelem,
                    port_range,
                    comment,
                }
            },
        )
}

fn adt() -> impl Strategy<Value = Request> {
    (
        prop_oneof![Just(AdtOp::Add), Just(AdtOp::Del), Just(AdtOp::Test)],
        name(),
        any::<bool>(),
        proptest::option::of(1u32..1_000_000),
        proptest::collection::vec(member(), 1..20),
    )
        .prop_map(|(op, name, exist_ok, batch, mut members)| {
            if batch.is_none() {
                members.truncate(1);
            }
            Request::Adt {
                op,
                name,
                exist_ok: exist_ok && op != AdtOp::Test,
                members,
                batch,
            }
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Protocol),
        (set_type(), family()).prop_map(|(set_type, family)| Request::Type {
            set_type,
            family: Some(family),
        }),
        name().prop_map(|name| Request::Header { name }),
        (create_spec(), any::<u8>(), any::<bool>()).prop_map(|(spec, revision, exist_ok)| {
            Request::Create {
                spec,
                revision,
                exist_ok,
            }
        }),
        (name(), any::<bool>()).prop_map(|(name, exist_ok)| Request::Destroy { name, exist_ok }),
        name().prop_map(|name| Request::Flush { name }),
        (name(), name()).prop_map(|(from, to)| Request::Rename { from, to }),
        (name(), name()).prop_map(|(from, to)| Request::Swap { from, to }),
        (
            proptest::option::of(name()),
            prop_oneof![
                Just(ListMode::Full),
                Just(ListMode::Header),
                Just(ListMode::Names)
            ]
        )
            .prop_map(|(name, mode)| Request::List { name, mode }),
        adt(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn emit_then_parse_is_identity(req in request(), seq in any::<u32>()) {
        let bytes = req.emit(seq, 7).unwrap();
        let (parsed_seq, parsed) = Request::parse(&bytes).unwrap();
        prop_assert_eq!(parsed_seq, seq);
        prop_assert_eq!(parsed, req);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_all(&bytes);
        let _ = Request::parse(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(req in request(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = req.emit(1, 7).unwrap();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        // Whatever still parses must survive emit -> parse unchanged.
        if let Ok((seq, parsed)) = Request::parse(&bytes)
            && let Ok(again) = parsed.emit(seq, 7)
        {
            prop_assert_eq!(Request::parse(&again).unwrap(), (seq, parsed));
        }
        let _ = decode_all(&bytes);
        let mut decoder = ListDecoder::new();
        let _ = decoder.feed(&bytes);
    }
}
