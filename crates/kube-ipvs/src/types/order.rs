//! Address ordering as integers. `IpAddr`'s own `Ord` walks the octets one byte at a time; the
//! full plan sorts, merges and searches hundreds of thousands of keys that hold addresses, so the
//! keys compare through [`ip_cmp`] instead. The order is the same: IPv4 before IPv6, then the
//! address as a big-endian number (which is what comparing octets in turn means).

use std::cmp::Ordering;
use std::net::IpAddr;

/// `a.cmp(b)`, computed on the addresses' integer values.
#[inline]
pub fn ip_cmp(a: &IpAddr, b: &IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.to_bits().cmp(&b.to_bits()),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.to_bits().cmp(&b.to_bits()),
        (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Less,
        (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::ip_cmp;
    use crate::types::{IpsetEntry, Proto, RsKey};
    use ipnet::IpNet;
    use std::net::IpAddr;

    fn ips() -> Vec<IpAddr> {
        [
            "0.0.0.0",
            "0.0.0.1",
            "1.0.0.0",
            "10.96.0.1",
            "10.96.1.0",
            "127.255.255.255",
            "128.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "fd00::1",
            "fd00::1:0",
            "ffff::",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    }

    #[test]
    fn agrees_with_std_order() {
        let ips = ips();
        for a in &ips {
            for b in &ips {
                assert_eq!(ip_cmp(a, b), a.cmp(b), "{a} vs {b}");
            }
        }
    }

    /// What `#[derive(Ord)]` would compare: variant index, then the fields with std orders.
    fn derived(
        e: &IpsetEntry,
    ) -> (
        u8,
        Option<IpAddr>,
        Option<Proto>,
        u16,
        Option<IpAddr>,
        Option<IpNet>,
    ) {
        match *e {
            IpsetEntry::Ip(a) => (0, Some(a), None, 0, None, None),
            IpsetEntry::IpPort(a, p, n) => (1, Some(a), Some(p), n, None, None),
            IpsetEntry::IpPortIp(a, p, n, b) => (2, Some(a), Some(p), n, Some(b), None),
            IpsetEntry::IpPortNet(a, p, n, x) => (3, Some(a), Some(p), n, None, Some(x)),
            IpsetEntry::Port(n) => (4, None, None, n, None, None),
        }
    }

    #[test]
    fn keys_order_as_derived_orders_would() {
        let ips = ips();
        let nets: Vec<IpNet> = ["10.0.0.0/8", "10.0.0.0/16", "fd00::/8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut entries = vec![IpsetEntry::Port(80), IpsetEntry::Port(443)];
        for (i, a) in ips.iter().enumerate() {
            let b = ips[(i + 3) % ips.len()];
            let net = nets[i % nets.len()];
            let proto = [Proto::Tcp, Proto::Udp, Proto::Sctp][i % 3];
            entries.extend([
                IpsetEntry::Ip(*a),
                IpsetEntry::IpPort(*a, proto, 80),
                IpsetEntry::IpPort(*a, Proto::Tcp, 443),
                IpsetEntry::IpPortIp(*a, proto, 80, b),
                IpsetEntry::IpPortIp(*a, proto, 80, *a),
                IpsetEntry::IpPortNet(*a, proto, 80, net),
                IpsetEntry::IpPortNet(*a, proto, 80, nets[0]),
            ]);
        }
        for a in &entries {
            for b in &entries {
                assert_eq!(a.cmp(b), derived(a).cmp(&derived(b)), "{a} vs {b}");
            }
        }
        let keys: Vec<RsKey> = ips
            .iter()
            .flat_map(|a| [80, 8080].map(|port| RsKey { addr: *a, port }))
            .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), (a.addr, a.port).cmp(&(b.addr, b.port)));
            }
        }
    }
}
