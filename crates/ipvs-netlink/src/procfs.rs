//! `/proc/net/ip_vs`: the kernel's text table of one network namespace, read in one go.
//!
//! It carries services with scheduler, one-packet and persistence flags, and every destination
//! with forwarding method, weight and active/inactive connection counts: everything
//! `ipvsadm -Ln` prints without `--stats`/`--rate`/`--persistent-conn`/`--exact` extras. Reading it
//! is one `read` loop instead of one GET_DEST dump per service, which makes it the fast path for
//! observing large tables ([`crate::Client::snapshot`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::DecodeError;
use crate::service::{SchedulerName, VirtualServiceKey};
use crate::{AddressFamily, Protocol};

/// The forwarding method as the table names it (no tunnel parameters there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardKind {
    /// "Masq".
    Masquerade,
    /// "Local".
    Local,
    /// "Tunnel".
    Tunnel,
    /// "Route".
    DirectRoute,
    /// "Bypass" (never used by destinations, listed for completeness).
    Bypass,
}

/// One destination line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDestination {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub forward: ForwardKind,
    /// Weight.
    pub weight: u32,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
}

/// One service with its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotService {
    /// Identity.
    pub key: VirtualServiceKey,
    /// Scheduler.
    pub scheduler: SchedulerName,
    /// One-packet scheduling (the kernel does not print it for IPv6 services).
    pub one_packet: bool,
    /// `Some((timeout in jiffies, raw netmask))` for persistent services.
    pub persistent: Option<(u32, u32)>,
    /// Destinations in kernel order.
    pub destinations: Vec<SnapshotDestination>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Connection table size from the header line.
    pub conn_tab_size: u32,
    /// Services in kernel (hash) order.
    pub services: Vec<SnapshotService>,
}

fn bad(line: usize, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        object: "/proc/net/ip_vs",
        attribute: "line",
        reason: format!("line {}: {}", line + 1, reason.into()),
    }
}

fn hex_u32(s: &str, line: usize) -> Result<u32, DecodeError> {
    u32::from_str_radix(s, 16).map_err(|_| bad(line, format!("{s:?} is not hex")))
}

fn hex_u16(s: &str, line: usize) -> Result<u16, DecodeError> {
    u16::from_str_radix(s, 16).map_err(|_| bad(line, format!("{s:?} is not a hex port")))
}

/// `0A000001:0050` or `[2001:0db8:...:0001]:0050`.
fn addr_port(s: &str, line: usize) -> Result<(IpAddr, u16), DecodeError> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad(line, format!("{s:?}: no ]:port")))?;
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| bad(line, format!("{addr:?} is not IPv6")))?;
        Ok((IpAddr::V6(ip), hex_u16(port, line)?))
    } else {
        let (addr, port) = s
            .split_once(':')
            .ok_or_else(|| bad(line, format!("{s:?}: no :port")))?;
        Ok((
            IpAddr::V4(Ipv4Addr::from(hex_u32(addr, line)?)),
            hex_u16(port, line)?,
        ))
    }
}

fn scheduler(s: Option<&str>, line: usize) -> Result<SchedulerName, DecodeError> {
    let s = s.ok_or_else(|| bad(line, "no scheduler"))?;
    SchedulerName::new(s).map_err(|e| bad(line, e.to_string()))
}

fn number(s: Option<&str>, line: usize, what: &str) -> Result<u32, DecodeError> {
    let s = s.ok_or_else(|| bad(line, format!("no {what}")))?;
    // Weights are printed with %d; negative values cannot be set, but stay total.
    s.parse::<u32>()
        .or_else(|_| s.parse::<i32>().map(|v| v.unsigned_abs()))
        .map_err(|_| bad(line, format!("{what} {s:?}")))
}

/// Flags after the scheduler: `ops` and/or `persistent <jiffies> <hexmask>`.
fn service_flags<'a>(
    mut words: impl Iterator<Item = &'a str>,
    line: usize,
) -> Result<(bool, Option<(u32, u32)>), DecodeError> {
    let mut ops = false;
    let mut persistent = None;
    while let Some(w) = words.next() {
        match w {
            "ops" => ops = true,
            "persistent" => {
                let t = number(words.next(), line, "persistence timeout")?;
                let m = hex_u32(words.next().ok_or_else(|| bad(line, "no netmask"))?, line)?;
                persistent = Some((t, m));
            }
            other => return Err(bad(line, format!("unknown flag {other:?}"))),
        }
    }
    Ok((ops, persistent))
}

/// Parse the full text of `/proc/net/ip_vs`.
pub fn parse(text: &str) -> Result<Snapshot, DecodeError> {
    let mut snap = Snapshot::default();
    for (i, raw) in text.lines().enumerate() {
        let mut words = raw.split_whitespace();
        let Some(first) = words.next() else { continue };
        match first {
            "IP" => {
                // "IP Virtual Server version 1.2.1 (size=4096)"
                if let Some(size) = raw.split("(size=").nth(1).and_then(|s| s.strip_suffix(')')) {
                    snap.conn_tab_size = size.parse().map_err(|_| bad(i, "bad size"))?;
                }
            }
            "Prot" => {}
            "->" => {
                let Some(addr) = words.next() else {
                    return Err(bad(i, "empty destination line"));
                };
                if addr == "RemoteAddress:Port" {
                    continue;
                }
                let (addr, port) = addr_port(addr, i)?;
                let forward = match words.next() {
                    Some("Masq") => ForwardKind::Masquerade,
                    Some("Local") => ForwardKind::Local,
                    Some("Tunnel") => ForwardKind::Tunnel,
                    Some("Route") => ForwardKind::DirectRoute,
                    Some("Bypass") => ForwardKind::Bypass,
                    other => return Err(bad(i, format!("unknown forwarding method {other:?}"))),
                };
                let weight = number(words.next(), i, "weight")?;
                let active_conns = number(words.next(), i, "ActiveConn")?;
                let inactive_conns = number(words.next(), i, "InActConn")?;
                let svc = snap
                    .services
                    .last_mut()
                    .ok_or_else(|| bad(i, "destination before any service"))?;
                svc.destinations.push(SnapshotDestination {
                    addr,
                    port,
                    forward,
                    weight,
                    active_conns,
                    inactive_conns,
                });
            }
            "FWM" => {
                let mark = hex_u32(words.next().ok_or_else(|| bad(i, "no mark"))?, i)?;
                let scheduler = scheduler(words.next(), i)?;
                let (one_packet, persistent) = service_flags(words, i)?;
                // The table does not say which family a fwmark service is for; IPv4 is the
                // only one kube-ipvs creates. Use netlink for an exact answer.
                let key = VirtualServiceKey::Fwmark {
                    family: AddressFamily::Inet,
                    mark,
                };
                snap.services.push(SnapshotService {
                    key,
                    scheduler,
                    one_packet,
                    persistent,
                    destinations: Vec::new(),
                });
            }
            proto => {
                let protocol = match proto {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    other => return Err(bad(i, format!("unknown protocol {other:?}"))),
                };
                let (addr, port) = addr_port(words.next().ok_or_else(|| bad(i, "no address"))?, i)?;
                let scheduler = scheduler(words.next(), i)?;
                let (one_packet, persistent) = service_flags(words, i)?;
                let key = VirtualServiceKey::Inet {
                    protocol,
                    addr,
                    port,
                };
                snap.services.push(SnapshotService {
                    key,
                    scheduler,
                    one_packet,
                    persistent,
                    destinations: Vec::new(),
                });
            }
        }
    }
    Ok(snap)
}
