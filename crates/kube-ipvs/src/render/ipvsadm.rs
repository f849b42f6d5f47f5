//! `ipvsadm -Ln` layout, byte for byte (ipvsadm.c `list_all`, `print_title`,
//! `print_service_entry`), optionally annotated with the owning Service port.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::order;
use crate::types::{Family, RealServer, ServicePortName, VsFlags, VsKey, VsSpec};

/// The three header lines of `ipvsadm -Ln` (version and connection table size of a stock kernel).
pub const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

/// One virtual server to print.
#[derive(Clone, Copy, Debug)]
pub struct TableRow<'a> {
    /// Identity.
    pub key: &'a VsKey,
    /// Properties.
    pub spec: &'a VsSpec,
    /// Real servers, in any order.
    pub reals: &'a [RealServer],
    /// Owner to annotate (`  # ns/name:port`), if any.
    pub owner: Option<&'a ServicePortName>,
}

fn v4_mask(prefix: u8) -> IpAddr {
    let bits = u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    IpAddr::from(bits.to_be_bytes())
}

fn service_line(out: &mut String, row: &TableRow<'_>) {
    let spec = row.spec;
    let _ = write!(out, "{} {}", row.key, spec.scheduler);
    if let Some(names) = spec.flags.sched_flag_names(spec.scheduler) {
        let _ = write!(out, " ({names})");
    }
    if spec.flags.has(VsFlags::PERSISTENT) {
        let _ = write!(out, " persistent {}", spec.timeout);
        match row.key.family() {
            Family::V4 if spec.netmask != 32 => {
                let _ = write!(out, " mask {}", v4_mask(spec.netmask));
            }
            Family::V6 if spec.netmask != 128 => {
                let _ = write!(out, " mask {}", spec.netmask);
            }
            _ => {}
        }
    }
    if spec.flags.has(VsFlags::ONEPACKET) {
        out.push_str(" ops");
    }
    if let Some(owner) = row.owner {
        let _ = write!(out, "  # {owner}");
    }
    out.push('\n');
}

/// Prints the table: header, then each virtual server and its real servers, in the order
/// `ipvsadm -Ln` prints them (see [`super::order`]).
pub fn ipvsadm_table<'a>(out: &mut String, rows: impl IntoIterator<Item = TableRow<'a>>) {
    out.push_str(HEADER);
    let mut rows: Vec<TableRow<'a>> = rows.into_iter().collect();
    order::glibc_sort(&mut rows, &|a: &TableRow<'_>, b: &TableRow<'_>| {
        order::cmp_services(a.key, b.key)
    });
    for row in rows {
        service_line(out, &row);
        let mut reals: Vec<&RealServer> = row.reals.iter().collect();
        order::glibc_sort(&mut reals, &|a: &&RealServer, b: &&RealServer| {
            order::cmp_dests(&a.key, &b.key)
        });
        for rs in reals {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                rs.key.to_string(),
                rs.forward.name(),
                rs.weight,
                rs.active,
                rs.inactive
            );
        }
    }
}
