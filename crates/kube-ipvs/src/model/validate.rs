//! The checks the API server makes and the file source cannot rely on: addresses a proxier must
//! never program, and object names (so `namespace/name` keys cannot collide).
//!
//! Addresses follow `ValidateEndpointIP` (k8s.io/kubernetes pkg/apis/core/validation), which the
//! API server applies to EndpointSlice addresses and externalIPs, parsed like `ParseIPSloppy`
//! (legacy IPv4 with leading zeros is decimal). On top of it: every multicast address (the API
//! server lets global multicast through, "probably a bug" says its own comment; IPVS cannot
//! balance to or from one), the IPv4 broadcast address, and IPv4-mapped IPv6 (Go reads
//! `::ffff:a.b.c.d` as IPv4, Rust as IPv6: the family would be wrong either way).

use std::net::{IpAddr, Ipv4Addr};

use super::reject::Rejection;

/// Parses an address as Kubernetes' `ParseIPSloppy` does: the standard forms, plus dotted IPv4
/// whose parts have leading zeros (`010.096.008.001` is 10.96.8.1, decimal, never octal).
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = part.parse().ok()?;
    }
    parts
        .next()
        .is_none()
        .then_some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// Why an address cannot be a virtual or real server, if it cannot.
pub fn unusable_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() {
                Some("may not be unspecified (0.0.0.0)")
            } else if v4.is_loopback() {
                Some("may not be in the loopback range (127.0.0.0/8)")
            } else if v4.is_link_local() {
                Some("may not be in the link-local range (169.254.0.0/16)")
            } else if v4.is_multicast() {
                Some("may not be multicast (224.0.0.0/4)")
            } else if v4.is_broadcast() {
                Some("may not be the broadcast address (255.255.255.255)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some("may not be unspecified (::)")
            } else if v6.is_loopback() {
                Some("may not be in the loopback range (::1/128)")
            } else if v6.is_unicast_link_local() {
                Some("may not be in the link-local range (fe80::/10)")
            } else if v6.is_multicast() {
                Some("may not be multicast (ff00::/8)")
            } else if v6.to_ipv4_mapped().is_some() {
                Some(
                    "may not be an IPv4-mapped IPv6 address (::ffff:0:0/96): write the IPv4 address",
                )
            } else {
                None
            }
        }
    }
}

/// Parses and checks an address for a virtual or real server: a typed rejection naming `field`.
pub fn usable_ip(field: impl FnOnce() -> String, value: &str) -> Result<IpAddr, Rejection> {
    let Some(ip) = parse_ip_sloppy(value.trim()) else {
        return Err(Rejection::InvalidIp {
            field: field(),
            value: value.to_owned(),
        });
    };
    match unusable_ip(ip) {
        None => Ok(ip),
        Some(why) => Err(Rejection::UnusableIp {
            field: field(),
            value: value.to_owned(),
            why,
        }),
    }
}

/// Kubernetes' `IsDNS1123Label`: at most 63 of `[a-z0-9-]`, alphanumeric at both ends
/// (namespaces, Service names, port names).
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Kubernetes' `IsDNS1123Subdomain`: at most 253 characters, DNS-1123 labels joined by dots
/// (EndpointSlice, Node and ServiceCIDR names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// What a name must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 label.
    Label,
    /// A DNS-1123 subdomain.
    Subdomain,
}

impl NameRule {
    fn check(self, s: &str) -> bool {
        match self {
            NameRule::Label => is_dns1123_label(s),
            NameRule::Subdomain => is_dns1123_subdomain(s),
        }
    }

    fn what(self) -> &'static str {
        match self {
            NameRule::Label => {
                "must be a DNS-1123 label (at most 63 of a-z, 0-9 and '-', alphanumeric at both ends)"
            }
            NameRule::Subdomain => {
                "must be a DNS-1123 subdomain (DNS-1123 labels joined by '.', at most 253 characters)"
            }
        }
    }
}

/// Checks one name against its rule.
pub fn check_name(field: &str, value: &str, rule: NameRule) -> Result<(), Rejection> {
    if rule.check(value) {
        Ok(())
    } else {
        Err(Rejection::InvalidName {
            field: field.to_owned(),
            value: value.to_owned(),
            why: rule.what(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn legacy_leading_zero_ipv4_is_decimal_as_in_parse_ip_sloppy() {
        assert_eq!(
            parse_ip_sloppy("010.096.008.001"),
            Some("10.96.8.1".parse().unwrap())
        );
        assert_eq!(
            parse_ip_sloppy("10.96.0.010"),
            Some("10.96.0.10".parse().unwrap())
        );
        for bad in [
            "10.96.0.999",
            "10.96.0",
            "10.96.0.1.2",
            "0010.1.1.1",
            "1..1.1",
            "+1.1.1.1",
            "",
        ] {
            assert_eq!(parse_ip_sloppy(bad), None, "{bad}");
        }
    }

    #[test]
    fn addresses_no_proxier_may_program_are_refused_with_the_reason() {
        for (ip, why) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("127.0.0.5", "loopback"),
            ("::1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("224.0.0.1", "multicast"),
            ("239.1.1.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::ffff:10.1.2.3", "IPv4-mapped"),
        ] {
            let e = usable_ip(|| "spec.externalIPs[0]".into(), ip).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with("spec.externalIPs[0]: ") && text.contains(why),
                "{ip}: {text}"
            );
        }
        for ok in ["10.96.0.1", "192.168.1.255", "fd00::1", "2001:db8::1"] {
            assert!(usable_ip(|| "f".into(), ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_follow_kubernetes_dns_rules() {
        for ok in ["a", "web-1", "0abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a/b",
            "a.b",
            "a\nb",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!is_dns1123_label(bad), "{bad:?}");
        }
        assert!(is_dns1123_subdomain("web-abc12.x"));
        assert!(!is_dns1123_subdomain("web..x"));
        assert!(!is_dns1123_subdomain("x/y"));
    }
}
