//! Sorting one ipset's members for the full rebuild. A member is a 48-byte enum and a large
//! cluster has one `KUBE-CLUSTER-IP` member per Service port: sorting them was a fifth of the
//! rebuild. IPv4 members (every member of an IPv4 set) pack into one `u128` whose integer order is
//! the members' order, so the sort moves and compares 16-byte integers; anything else sorts as is.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::types::{IpsetEntry, Proto};

/// Sorts `entries` in `IpsetEntry`'s order.
pub(super) fn sort(entries: &mut Vec<IpsetEntry>) {
    let packed: Option<Vec<u128>> = entries.iter().map(pack).collect();
    let Some(mut keys) = packed else {
        entries.sort_unstable();
        return;
    };
    keys.sort_unstable();
    match keys.into_iter().map(unpack).collect::<Option<Vec<_>>>() {
        Some(sorted) => *entries = sorted,
        // Unreachable (every packed key unpacks), but a total fallback costs nothing.
        None => entries.sort_unstable(),
    }
}

// Bit layout, most significant first: variant (3 bits), address (32), protocol (2), port (16),
// second address or network address (32), network prefix length (6). Fields follow the order in
// which `IpsetEntry` compares them, so integer order is member order.
const VARIANT: u32 = 125;
const ADDR: u32 = 93;
const PROTO: u32 = 91;
const PORT: u32 = 75;
const ADDR2: u32 = 43;
const PREFIX: u32 = 37;

fn v4(ip: &IpAddr) -> Option<u128> {
    match ip {
        IpAddr::V4(a) => Some(u128::from(a.to_bits())),
        IpAddr::V6(_) => None,
    }
}

fn proto_rank(p: Proto) -> u128 {
    match p {
        Proto::Tcp => 0,
        Proto::Udp => 1,
        Proto::Sctp => 2,
    }
}

fn pack(e: &IpsetEntry) -> Option<u128> {
    let ipp = |variant: u128, a: &IpAddr, p: Proto, n: u16| -> Option<u128> {
        Some(variant << VARIANT | v4(a)? << ADDR | proto_rank(p) << PROTO | u128::from(n) << PORT)
    };
    Some(match e {
        IpsetEntry::Ip(a) => v4(a)? << ADDR,
        IpsetEntry::IpPort(a, p, n) => ipp(1, a, *p, *n)?,
        IpsetEntry::IpPortIp(a, p, n, b) => ipp(2, a, *p, *n)? | v4(b)? << ADDR2,
        IpsetEntry::IpPortNet(a, p, n, IpNet::V4(net)) => {
            ipp(3, a, *p, *n)?
                | u128::from(net.addr().to_bits()) << ADDR2
                | u128::from(net.prefix_len()) << PREFIX
        }
        IpsetEntry::IpPortNet(_, _, _, IpNet::V6(_)) => return None,
        IpsetEntry::Port(n) => 4 << VARIANT | u128::from(*n) << PORT,
    })
}

fn field(key: u128, shift: u32, bits: u32) -> u128 {
    (key >> shift) & ((1 << bits) - 1)
}

fn unpack(key: u128) -> Option<IpsetEntry> {
    let u32_at = |shift, bits| u32::try_from(field(key, shift, bits)).ok();
    let addr = |shift| Some(IpAddr::V4(Ipv4Addr::from_bits(u32_at(shift, 32)?)));
    let proto = match field(key, PROTO, 2) {
        0 => Proto::Tcp,
        1 => Proto::Udp,
        2 => Proto::Sctp,
        _ => return None,
    };
    let port = u16::try_from(field(key, PORT, 16)).ok()?;
    Some(match field(key, VARIANT, 3) {
        0 => IpsetEntry::Ip(addr(ADDR)?),
        1 => IpsetEntry::IpPort(addr(ADDR)?, proto, port),
        2 => IpsetEntry::IpPortIp(addr(ADDR)?, proto, port, addr(ADDR2)?),
        3 => {
            let prefix = u8::try_from(field(key, PREFIX, 6)).ok()?;
            let net = Ipv4Net::new(Ipv4Addr::from_bits(u32_at(ADDR2, 32)?), prefix).ok()?;
            IpsetEntry::IpPortNet(addr(ADDR)?, proto, port, IpNet::V4(net))
        }
        4 => IpsetEntry::Port(port),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{pack, sort, unpack};
    use crate::types::{IpsetEntry, Proto};

    fn entries(v6: bool) -> Vec<IpsetEntry> {
        let mut ips: Vec<std::net::IpAddr> =
            ["10.96.0.10", "10.96.0.2", "0.0.0.0", "255.255.255.255"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        if v6 {
            ips.push("fd00::1".parse().unwrap());
        }
        let nets: Vec<ipnet::IpNet> = ["10.0.0.0/8", "10.0.0.0/16", "0.0.0.0/0", "1.2.3.4/32"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut out = vec![
            IpsetEntry::Port(30080),
            IpsetEntry::Port(0),
            IpsetEntry::Port(65535),
        ];
        for (i, a) in ips.iter().enumerate() {
            let b = ips[(i + 1) % ips.len()];
            for proto in [Proto::Udp, Proto::Tcp, Proto::Sctp] {
                for port in [443, 80, 0, 65535] {
                    out.push(IpsetEntry::IpPort(*a, proto, port));
                    out.push(IpsetEntry::IpPortIp(*a, proto, port, b));
                    out.push(IpsetEntry::IpPortIp(*a, proto, port, *a));
                    for net in &nets {
                        out.push(IpsetEntry::IpPortNet(*a, proto, port, *net));
                    }
                }
            }
            out.push(IpsetEntry::Ip(*a));
        }
        out
    }

    #[test]
    fn sorts_as_the_members_order() {
        for v6 in [false, true] {
            let mut got = entries(v6);
            got.reverse();
            let mut want = got.clone();
            want.sort_unstable();
            sort(&mut got);
            assert_eq!(got, want, "with IPv6: {v6}");
        }
    }

    #[test]
    fn ipv4_members_round_trip() {
        for e in entries(false) {
            assert_eq!(pack(&e).and_then(unpack), Some(e));
        }
    }
}
