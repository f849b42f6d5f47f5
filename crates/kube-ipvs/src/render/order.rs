//! The order `ipvsadm -Ln` prints in: glibc's `qsort` (a top-down merge sort in glibc <= 2.36, as in
//! Debian 12) with libipvs's `ipvs_cmp_services` / `ipvs_cmp_dests`. Those compare addresses as C
//! does, by subtracting host-order 32-bit words and reading the result as a signed `int`, so the
//! order is not address order: 203.0.113.254 sorts before 10.96.0.1 (pinned by the ipvsadm 1.31
//! capture in `tests/fixtures/ipvsadm-1.31/`). The comparison is not transitive, so the merge must
//! be glibc's own for the output to match byte for byte.

use std::net::IpAddr;

use crate::types::{Family, RsKey, VsKey};

/// `AF_INET` and `AF_INET6` as libipvs compares them.
fn af(family: Family) -> i32 {
    match family {
        Family::V4 => 2,
        Family::V6 => 10,
    }
}

/// C's `ntohl(a) - ntohl(b)` on unsigned words, converted to `int`.
fn word_diff(a: u32, b: u32) -> i32 {
    i32::from_ne_bytes(a.wrapping_sub(b).to_ne_bytes())
}

/// libipvs's address comparison: one word for IPv4, the first differing word of four for IPv6.
fn addr_diff(a: IpAddr, b: IpAddr) -> i32 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => word_diff(a.to_bits(), b.to_bits()),
        (a, b) => {
            let words = |ip: IpAddr| {
                let bits = match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
                    IpAddr::V6(v6) => v6.to_bits(),
                };
                [96u32, 64, 32, 0]
                    .map(|shift| u32::try_from((bits >> shift) & u128::from(u32::MAX)).unwrap_or(0))
            };
            words(a)
                .into_iter()
                .zip(words(b))
                .map(|(x, y)| word_diff(x, y))
                .find(|r| *r != 0)
                .unwrap_or(0)
        }
    }
}

/// `ipvs_cmp_services`: fwmark, family, protocol, address, port.
pub fn cmp_services(a: &VsKey, b: &VsKey) -> i32 {
    // (fwmark, af, protocol, address, port); address services have fwmark 0, fwmark ones no address.
    let parts = |k: &VsKey| match *k {
        VsKey::Service { proto, addr, port } => {
            let family = if addr.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            };
            (
                0u32,
                af(family),
                i32::from(proto.number()),
                Some(addr),
                i32::from(port),
            )
        }
        VsKey::Fwmark { family, mark } => (mark, af(family), 0, None, 0),
    };
    let (m1, f1, p1, a1, o1) = parts(a);
    let (m2, f2, p2, a2, o2) = parts(b);
    let unspecified = IpAddr::from([0u8; 4]);
    [
        word_diff(m1, m2),
        f1 - f2,
        p1 - p2,
        addr_diff(a1.unwrap_or(unspecified), a2.unwrap_or(unspecified)),
        o1 - o2,
    ]
    .into_iter()
    .find(|r| *r != 0)
    .unwrap_or(0)
}

/// `ipvs_cmp_dests`: address, then port.
pub fn cmp_dests(a: &RsKey, b: &RsKey) -> i32 {
    match addr_diff(a.addr, b.addr) {
        0 => i32::from(a.port) - i32::from(b.port),
        r => r,
    }
}

/// glibc's `msort_with_tmp`: split at n/2, sort both halves, merge taking from the left while
/// `cmp(left, right) <= 0`.
pub fn glibc_sort<T: Clone>(items: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    if items.len() <= 1 {
        return;
    }
    let (left, right) = items.split_at_mut(items.len() / 2);
    glibc_sort(left, cmp);
    glibc_sort(right, cmp);
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.iter().peekable(), right.iter().peekable());
    while let (Some(a), Some(b)) = (l.peek(), r.peek()) {
        if cmp(a, b) <= 0 {
            merged.extend(l.next().cloned());
        } else {
            merged.extend(r.next().cloned());
        }
    }
    merged.extend(l.cloned());
    merged.extend(r.cloned());
    for (slot, item) in items.iter_mut().zip(merged) {
        *slot = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Proto;

    fn svc(proto: Proto, addr: &str, port: u16) -> VsKey {
        VsKey::new(proto, addr.parse().unwrap(), port)
    }

    /// The order ipvsadm 1.31 printed for `tests/fixtures/ipvsadm-1.31/cases.sh`.
    #[test]
    fn matches_the_ipvsadm_capture() {
        let expected = vec![
            svc(Proto::Tcp, "203.0.113.254", 65535),
            svc(Proto::Tcp, "10.96.0.1", 443),
            svc(Proto::Tcp, "10.96.0.11", 80),
            svc(Proto::Udp, "10.96.0.10", 53),
            svc(Proto::Udp, "10.96.0.12", 80),
            svc(Proto::Udp, "10.96.0.14", 80),
            svc(Proto::Sctp, "10.96.0.13", 9000),
            svc(Proto::Tcp, "fd00::1", 443),
            VsKey::Fwmark {
                family: Family::V4,
                mark: 42,
            },
            VsKey::Fwmark {
                family: Family::V6,
                mark: 43,
            },
        ];
        // The kernel dumps in hash order; any input order must give ipvsadm's order here.
        let mut keys = expected.clone();
        keys.reverse();
        keys.swap(2, 7);
        glibc_sort(&mut keys, &cmp_services);
        assert_eq!(keys, expected);
    }

    #[test]
    fn dests_compare_by_wrapped_address_then_port() {
        let rs = |a: &str, port| RsKey {
            addr: a.parse().unwrap(),
            port,
        };
        assert!(cmp_dests(&rs("10.0.0.1", 6443), &rs("10.0.0.2", 443)) < 0);
        assert!(cmp_dests(&rs("192.168.0.1", 80), &rs("10.0.0.1", 80)) < 0);
        assert!(cmp_dests(&rs("10.0.0.1", 80), &rs("10.0.0.1", 81)) < 0);
    }
}
