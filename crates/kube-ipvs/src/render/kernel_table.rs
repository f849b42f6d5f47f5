//! The kernel's IPVS table in the layouts of `ipvsadm -Ln` and its listing options (`--stats`,
//! `--rate`, `--exact`, `--thresholds`, `--persistent-conn`, `--tun-info`), byte for byte as
//! ipvsadm 1.31 prints them (`print_title`, `print_service_entry`, `print_largenum` in
//! ipvsadm.c; pinned by `tests/fixtures/ipvsadm-1.31/`). Pure: the caller reads the kernel.
//!
//! Unlike [`super::ipvsadm_table`] (the planner's desired table, in domain types) this prints
//! whatever the kernel holds: fwmark services, any scheduler and flag, persistence engines,
//! tunnels, local forwarding, stats.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipvs_netlink::{
    AddressFamily, Destination, ForwardMethod, Info, ServiceFlags, Stats, TableService, TunnelType,
    VirtualServiceKey,
};

use serde::Serialize;

use super::order;
use crate::kernel::vs_key;
use crate::types::RsKey;

/// Which columns to print (ipvsadm's `FMT_*` precedence: stats, rate, thresholds,
/// persistent-conn, tun-info, default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Columns {
    /// `Forward Weight ActiveConn InActConn`.
    #[default]
    Default,
    /// `--stats`: `Conns InPkts OutPkts InBytes OutBytes`.
    Stats,
    /// `--rate`: `CPS InPPS OutPPS InBPS OutBPS`.
    Rate,
    /// `--thresholds`: `Uthreshold Lthreshold ActiveConn InActConn`.
    Thresholds,
    /// `--persistent-conn`: `Weight PersistConn ActiveConn InActConn`.
    PersistentConn,
    /// `--tun-info`: `Forward TunnelInfo Weight ActiveConn InActConn`.
    TunInfo,
}

impl Columns {
    /// The columns ipvsadm picks when several listing options are given.
    pub fn from_flags(
        stats: bool,
        rate: bool,
        thresholds: bool,
        persistent_conn: bool,
        tun_info: bool,
    ) -> Self {
        [
            (stats, Self::Stats),
            (rate, Self::Rate),
            (thresholds, Self::Thresholds),
            (persistent_conn, Self::PersistentConn),
            (tun_info, Self::TunInfo),
        ]
        .into_iter()
        .find_map(|(on, c)| on.then_some(c))
        .unwrap_or(Self::Default)
    }
}

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListFormat {
    /// Columns.
    pub columns: Columns,
    /// `--exact`: counters in full instead of K/M/G/T.
    pub exact: bool,
}

/// What `--services` appends to a virtual server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Annotation {
    /// Nothing (plain ipvsadm output).
    None,
    /// `  # namespace/name:port`.
    Owner(String),
    /// `  # foreign`: not created by kube-ipvs.
    Foreign,
}

/// The `IP Virtual Server version 1.2.1 (size=4096)` line `ipvsadm -Ln` starts with (not
/// printed when one service is listed with `-t/-u/-f`).
pub fn version_line(info: &Info) -> String {
    let (a, b, c) = info.version_triple();
    format!(
        "IP Virtual Server version {a}.{b}.{c} (size={})\n",
        info.conn_tab_size
    )
}

/// `ipvsadm -L --timeout`.
pub fn timeout_line(t: &ipvs_netlink::Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        c_int(t.tcp),
        c_int(t.tcp_fin),
        c_int(t.udp)
    )
}

/// ipvsadm prints some unsigned kernel values with `%d`.
fn c_int(v: u32) -> i32 {
    i32::from_ne_bytes(v.to_ne_bytes())
}

/// The column titles (`print_title`).
pub fn title(columns: Columns) -> &'static str {
    match columns {
        Columns::Stats => {
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n"
        }
        Columns::Rate => {
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n"
        }
        Columns::Thresholds => {
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\n"
        }
        Columns::PersistentConn => {
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  -> RemoteAddress:Port\n"
        }
        Columns::TunInfo => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        }
        Columns::Default => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        }
    }
}

/// `print_largenum`: right-aligned in 9 columns, scaled to K/M/G/T unless exact.
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>width$}");
        return;
    }
    let _ = match i {
        0..100_000_000 => write!(out, "{i:>9}"),
        100_000_000..1_000_000_000 => write!(out, "{:>8}K", i / 1_000),
        1_000_000_000..100_000_000_000 => write!(out, "{:>8}M", i / 1_000_000),
        100_000_000_000..100_000_000_000_000 => write!(out, "{:>8}G", i / 1_000_000_000),
        _ => write!(out, "{:>8}T", i / 1_000_000_000_000),
    };
}

/// `addrport_to_anyname` with `-n`: `a.b.c.d:port`, `[v6]:port`.
fn addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `print_sched_flags`: the names of the scheduler flags set, comma-separated.
fn sched_flags(scheduler: &str, flags: ServiceFlags) -> String {
    let names: [(ServiceFlags, &str); 3] = match scheduler {
        "sh" => [
            (ServiceFlags::SH_FALLBACK, "sh-fallback"),
            (ServiceFlags::SH_PORT, "sh-port"),
            (ServiceFlags::NONE, ""),
        ],
        "mh" => [
            (ServiceFlags::MH_FALLBACK, "mh-fallback"),
            (ServiceFlags::MH_PORT, "mh-port"),
            (ServiceFlags::NONE, ""),
        ],
        _ => [
            (ServiceFlags::SCHED1, "flag-1"),
            (ServiceFlags::SCHED2, "flag-2"),
            (ServiceFlags::SCHED3, "flag-3"),
        ],
    };
    names
        .iter()
        .filter(|(f, _)| *f != ServiceFlags::NONE && flags.contains(*f))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn any_sched_flag(flags: ServiceFlags) -> bool {
    [
        ServiceFlags::SCHED1,
        ServiceFlags::SCHED2,
        ServiceFlags::SCHED3,
    ]
    .iter()
    .any(|f| flags.contains(*f))
}

/// The service column: `TCP  10.0.0.1:80` (IPv4 cut to 33 characters), `FWM  5 IPv6`.
fn service_name(key: &VirtualServiceKey) -> String {
    match *key {
        VirtualServiceKey::Fwmark {
            family: AddressFamily::Inet,
            mark,
        } => format!("FWM  {mark}"),
        VirtualServiceKey::Fwmark {
            family: AddressFamily::Inet6,
            mark,
        } => format!("FWM  {mark} IPv6"),
        VirtualServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let mut s = format!("{:<4} {}", protocol.to_string(), addr_port(addr, port));
            if addr.is_ipv4() {
                s.truncate(33);
            }
            s
        }
    }
}

fn v4_mask(prefix: u8) -> IpAddr {
    let bits = u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    IpAddr::from(bits.to_be_bytes())
}

fn service_line(out: &mut String, ts: &TableService, fmt: ListFormat, note: &Annotation) {
    let s = &ts.service;
    let name = service_name(&s.key);
    let stats = s.stats.unwrap_or_default();
    match fmt.columns {
        Columns::Stats => {
            let _ = write!(out, "{name:<33}");
            for v in [
                stats.conns,
                stats.inpkts,
                stats.outpkts,
                stats.inbytes,
                stats.outbytes,
            ] {
                largenum(out, v, fmt.exact);
            }
        }
        Columns::Rate => {
            let _ = write!(out, "{name:<33}");
            for v in [
                stats.cps,
                stats.inpps,
                stats.outpps,
                stats.inbps,
                stats.outbps,
            ] {
                largenum(out, v, fmt.exact);
            }
        }
        _ => {
            let _ = write!(out, "{name} {}", s.scheduler);
            if any_sched_flag(s.flags) {
                let _ = write!(out, " ({})", sched_flags(s.scheduler.as_str(), s.flags));
            }
            if s.flags.contains(ServiceFlags::PERSISTENT) {
                let _ = write!(out, " persistent {}", s.timeout);
                match s.key.family() {
                    AddressFamily::Inet if s.netmask != 32 => {
                        let _ = write!(out, " mask {}", v4_mask(s.netmask));
                    }
                    AddressFamily::Inet6 if s.netmask != 128 => {
                        let _ = write!(out, " mask {}", s.netmask);
                    }
                    _ => {}
                }
                if let Some(pe) = s.pe_name.as_deref().filter(|p| !p.is_empty()) {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if s.flags.contains(ServiceFlags::ONEPACKET) {
                out.push_str(" ops");
            }
        }
    }
    match note {
        Annotation::None => {}
        Annotation::Owner(o) => {
            // From the owners file or a dump: input, printed escaped.
            let _ = write!(out, "  # {}", super::Escaped(o));
        }
        Annotation::Foreign => out.push_str("  # foreign"),
    }
    out.push('\n');
}

/// `fwd_tun_info`: `ipip`, `gue:PORT:FLAGS`, `gre:FLAGS`, or `n/a`.
fn tun_info(forward: &ForwardMethod) -> String {
    const FLAGS: [&str; 3] = ["-c", "+c", "r+c"];
    let ForwardMethod::Tunnel { kind, port, flags } = forward else {
        return "n/a".into();
    };
    let f = FLAGS.get(usize::from(flags.0)).copied().unwrap_or("n/a");
    match kind {
        TunnelType::Ipip => "ipip".into(),
        TunnelType::Gue => format!("gue:{port}:{f}"),
        TunnelType::Gre => format!("gre:{f}"),
    }
}

fn dest_line(out: &mut String, d: &Destination, fmt: ListFormat) {
    let mut name = addr_port(d.addr, d.port);
    if d.addr.is_ipv4() {
        name.truncate(28);
    }
    let stats: Stats = d.stats.unwrap_or_default();
    let fwd = d.forward.ipvsadm_name();
    let weight = c_int(d.weight);
    let (act, inact) = (d.active_conns, d.inactive_conns);
    let _ = match fmt.columns {
        Columns::Stats => {
            let _ = write!(out, "  -> {name:<28}");
            for v in [
                stats.conns,
                stats.inpkts,
                stats.outpkts,
                stats.inbytes,
                stats.outbytes,
            ] {
                largenum(out, v, fmt.exact);
            }
            writeln!(out)
        }
        Columns::Rate => {
            let _ = write!(
                out,
                "  -> {name:<28} {:>8} {:>8} {:>8}",
                stats.cps, stats.inpps, stats.outpps
            );
            largenum(out, stats.inbps, fmt.exact);
            largenum(out, stats.outbps, fmt.exact);
            writeln!(out)
        }
        Columns::Thresholds => writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {act:<10} {inact:<10}",
            d.upper_threshold, d.lower_threshold
        ),
        Columns::PersistentConn => writeln!(
            out,
            "  -> {name:<28} {:<9} {:<11} {act:<10} {inact:<10}",
            d.weight, d.persistent_conns
        ),
        Columns::TunInfo => writeln!(
            out,
            "  -> {name:<28} {fwd:<7} {:<13} {weight:<6} {act:<10} {inact:<10}",
            tun_info(&d.forward)
        ),
        Columns::Default => writeln!(
            out,
            "  -> {name:<28} {fwd:<7} {weight:<6} {act:<10} {inact:<10}"
        ),
    };
}

/// Services in the order `ipvsadm -Ln` prints them. `services` must be in the kernel's dump
/// order: libipvs's comparator is not transitive, so glibc's merge sort result depends on it.
pub fn sorted<'a>(services: impl IntoIterator<Item = &'a TableService>) -> Vec<&'a TableService> {
    let mut v: Vec<&TableService> = services.into_iter().collect();
    order::glibc_sort(&mut v, &|a: &&TableService, b: &&TableService| {
        order::cmp_services(&vs_key(&a.service.key), &vs_key(&b.service.key))
    });
    v
}

/// Destinations of one service in `ipvsadm -Ln` order (same caveat as [`sorted`]).
pub fn sorted_dests(dests: &[Destination]) -> Vec<&Destination> {
    let mut v: Vec<&Destination> = dests.iter().collect();
    order::glibc_sort(&mut v, &|a: &&Destination, b: &&Destination| {
        order::cmp_dests(
            &RsKey {
                addr: a.addr,
                port: a.port,
            },
            &RsKey {
                addr: b.addr,
                port: b.port,
            },
        )
    });
    v
}

/// Prints the table: the version line when `info` is given (`ipvsadm -Ln`; omitted for a
/// single service, `-t/-u/-f`), the titles, then each service (sorted as ipvsadm sorts them)
/// with its destinations. `annotate` names each service's owner for `--services`.
pub fn kernel_table<'a>(
    info: Option<&Info>,
    services: impl IntoIterator<Item = &'a TableService>,
    fmt: ListFormat,
    annotate: &dyn Fn(&VirtualServiceKey) -> Annotation,
) -> String {
    let mut out = String::new();
    if let Some(info) = info {
        out.push_str(&version_line(info));
    }
    out.push_str(title(fmt.columns));
    for ts in sorted(services) {
        service_line(&mut out, ts, fmt, &annotate(&ts.service.key));
        for d in sorted_dests(&ts.destinations) {
            dest_line(&mut out, d, fmt);
        }
    }
    out
}

/// Counters of `--json` with `--stats`/`--rate`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonStats {
    conns: u64,
    in_pkts: u64,
    out_pkts: u64,
    in_bytes: u64,
    out_bytes: u64,
    cps: u64,
    in_pps: u64,
    out_pps: u64,
    in_bps: u64,
    out_bps: u64,
}

impl From<Stats> for JsonStats {
    fn from(s: Stats) -> Self {
        Self {
            conns: s.conns,
            in_pkts: s.inpkts,
            out_pkts: s.outpkts,
            in_bytes: s.inbytes,
            out_bytes: s.outbytes,
            cps: s.cps,
            in_pps: s.inpps,
            out_pps: s.outpps,
            in_bps: s.inbps,
            out_bps: s.outbps,
        }
    }
}

/// One real server in `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonDestination {
    address: IpAddr,
    port: u16,
    forward: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<String>,
    weight: u32,
    upper_threshold: u32,
    lower_threshold: u32,
    active_conns: u32,
    inactive_conns: u32,
    persistent_conns: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<JsonStats>,
}

/// One virtual server in `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonService {
    /// `TCP  10.0.0.1:80` / `FWM  5 IPv6`, as the text layout names it.
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    family: &'static str,
    scheduler: String,
    /// `persistent`, `ops` and the scheduler flags (`sh-port`, ...).
    flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence_timeout: Option<u32>,
    netmask: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence_engine: Option<String>,
    /// `namespace/name:port` with `--services`, when ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// With `--services`: not created by kube-ipvs.
    #[serde(skip_serializing_if = "Option::is_none")]
    foreign: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<JsonStats>,
    destinations: Vec<JsonDestination>,
}

/// `kube-ipvs list --json`: the same services, order, owners (and counters when `stats`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonTable {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conn_table_size: Option<u32>,
    services: Vec<JsonService>,
}

/// Builds the `--json` view.
pub fn json_table<'a>(
    info: Option<&Info>,
    services: impl IntoIterator<Item = &'a TableService>,
    stats: bool,
    annotate: &dyn Fn(&VirtualServiceKey) -> Annotation,
) -> JsonTable {
    let svc = |ts: &TableService| {
        let s = &ts.service;
        let (protocol, address, port, fwmark) = match s.key {
            VirtualServiceKey::Inet {
                protocol,
                addr,
                port,
            } => (Some(protocol.to_string()), Some(addr), Some(port), None),
            VirtualServiceKey::Fwmark { mark, .. } => (None, None, None, Some(mark)),
        };
        let mut flags = Vec::new();
        if s.flags.contains(ServiceFlags::PERSISTENT) {
            flags.push("persistent".to_string());
        }
        if s.flags.contains(ServiceFlags::ONEPACKET) {
            flags.push("ops".to_string());
        }
        let sched = sched_flags(s.scheduler.as_str(), s.flags);
        flags.extend(sched.split(',').filter(|f| !f.is_empty()).map(String::from));
        let (owner, foreign) = match annotate(&s.key) {
            Annotation::None => (None, None),
            Annotation::Owner(o) => (Some(o), Some(false)),
            Annotation::Foreign => (None, Some(true)),
        };
        JsonService {
            name: service_name(&s.key),
            protocol,
            address,
            port,
            fwmark,
            family: s.key.family().name(),
            scheduler: s.scheduler.to_string(),
            flags,
            persistence_timeout: s
                .flags
                .contains(ServiceFlags::PERSISTENT)
                .then_some(s.timeout),
            netmask: s.netmask,
            persistence_engine: s.pe_name.clone().filter(|p| !p.is_empty()),
            owner,
            foreign,
            stats: stats.then(|| s.stats.unwrap_or_default().into()),
            destinations: sorted_dests(&ts.destinations)
                .into_iter()
                .map(|d| JsonDestination {
                    address: d.addr,
                    port: d.port,
                    forward: d.forward.ipvsadm_name(),
                    tunnel: matches!(d.forward, ForwardMethod::Tunnel { .. })
                        .then(|| tun_info(&d.forward)),
                    weight: d.weight,
                    upper_threshold: d.upper_threshold,
                    lower_threshold: d.lower_threshold,
                    active_conns: d.active_conns,
                    inactive_conns: d.inactive_conns,
                    persistent_conns: d.persistent_conns,
                    stats: stats.then(|| d.stats.unwrap_or_default().into()),
                })
                .collect(),
        }
    };
    JsonTable {
        version: info.map(|i| {
            let (a, b, c) = i.version_triple();
            format!("{a}.{b}.{c}")
        }),
        conn_table_size: info.map(|i| i.conn_tab_size),
        services: sorted(services).into_iter().map(svc).collect(),
    }
}

#[cfg(test)]
#[path = "kernel_table_tests.rs"]
mod tests;
