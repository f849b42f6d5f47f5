//! Deleting an nftables table by name (`nft delete table ip NAME`) over nfnetlink, without the
//! `nft` binary: one `NFT_MSG_DELTABLE` in its own batch transaction per table.
//!
//! kube-proxy's IPVS mode deletes the nftables proxier's tables (`ip kube-proxy`, `ip6
//! kube-proxy`) when it starts, because their DNAT rules run in prerouting, before IPVS sees the
//! packets, and would keep sending Service traffic to the endpoints they last knew.

use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_DELTABLE: u16 = 2;
const NFTA_TABLE_NAME: u16 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const ENOENT: i32 = 2;

/// The address family of a table (`nft` families `ip` and `ip6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftFamily {
    /// `ip` (`NFPROTO_IPV4`).
    Ip,
    /// `ip6` (`NFPROTO_IPV6`).
    Ip6,
}

impl NftFamily {
    fn nfproto(self) -> u8 {
        match self {
            NftFamily::Ip => 2,
            NftFamily::Ip6 => 10,
        }
    }

    /// `nft`'s name of the family.
    pub fn name(self) -> &'static str {
        match self {
            NftFamily::Ip => "ip",
            NftFamily::Ip6 => "ip6",
        }
    }
}

/// Why a table could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// A socket operation failed.
    #[error("nftables netlink socket: {op}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The error (with its errno).
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the deletion.
    #[error("delete table {family} {table}: {}", std::io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// `ip` or `ip6`.
        family: &'static str,
        /// The table.
        table: String,
        /// The errno.
        errno: i32,
    },
    /// No answer in time.
    #[error("delete table {family} {table}: no answer within {timeout:?}")]
    Timeout {
        /// `ip` or `ip6`.
        family: &'static str,
        /// The table.
        table: String,
        /// The bound.
        timeout: Duration,
    },
}

fn message(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family);
    m.push(0); // NFNETLINK_V0
    m.extend_from_slice(&res_id.to_be_bytes());
    m.extend_from_slice(attrs);
    m
}

fn name_attr(name: &str) -> Vec<u8> {
    let len = 4 + name.len() + 1;
    let mut a = Vec::with_capacity(len + 3);
    a.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    a.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

/// The batch `nft delete table FAMILY NAME` sends: begin, delete (acknowledged), end.
pub fn delete_request(family: NftFamily, name: &str, seq: u32) -> Vec<u8> {
    let mut batch = message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    batch.extend(message(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq.wrapping_add(1),
        family.nfproto(),
        0,
        &name_attr(name),
    ));
    batch.extend(message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq.wrapping_add(2),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    ));
    batch
}

/// The error code of the `NLMSG_ERROR` answering `seq` in a datagram, if there is one.
pub fn ack_for(datagram: &[u8], seq: u32) -> Option<i32> {
    let mut rest = datagram;
    while rest.len() >= 16 {
        let len = usize::try_from(u32::from_ne_bytes(rest.get(0..4)?.try_into().ok()?)).ok()?;
        let ty = u16::from_ne_bytes(rest.get(4..6)?.try_into().ok()?);
        let got = u32::from_ne_bytes(rest.get(8..12)?.try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        if ty == NLMSG_ERROR && got == seq {
            return Some(i32::from_ne_bytes(rest.get(16..20)?.try_into().ok()?));
        }
        rest = rest.get(len.next_multiple_of(4).min(rest.len())..)?;
    }
    None
}

/// Deletes table `name` of `family` in the calling thread's network namespace. `Ok(true)`: it
/// existed and is gone; `Ok(false)`: there was no such table.
pub fn delete_table(family: NftFamily, name: &str, timeout: Duration) -> Result<bool, NftError> {
    let io = |op| move |source| NftError::Socket { op, source };
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("open"))?;
    socket.bind_auto().map_err(io("bind"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(io("connect"))?;
    let tv = TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    setsockopt(&socket.as_fd(), ReceiveTimeout, &tv)
        .map_err(|e| io("set the receive timeout")(std::io::Error::from(e)))?;
    let seq = 1;
    socket
        .send(&delete_request(family, name, seq), 0)
        .map_err(io("send"))?;
    let deadline = Instant::now() + timeout;
    let timed_out = || NftError::Timeout {
        family: family.name(),
        table: name.to_owned(),
        timeout,
    };
    loop {
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        match socket.recv(&mut buf, 0) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(io("receive")(e)),
        }
        match ack_for(&buf, seq + 1) {
            Some(0) => return Ok(true),
            Some(e) if e == -ENOENT => return Ok(false),
            Some(e) => {
                return Err(NftError::Kernel {
                    family: family.name(),
                    table: name.to_owned(),
                    errno: -e,
                });
            }
            None => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_what_nft_sends() {
        let b = delete_request(NftFamily::Ip6, "kube-proxy", 7);
        // begin (20) + delete (20 + attribute 4 + "kube-proxy\0" padded to 12) + end (20)
        assert_eq!(b.len(), 20 + 36 + 20);
        let delete = &b[20..56];
        assert_eq!(u32::from_ne_bytes(delete[0..4].try_into().unwrap()), 36);
        assert_eq!(u16::from_ne_bytes(delete[4..6].try_into().unwrap()), 0x0a02);
        assert_eq!(u16::from_ne_bytes(delete[6..8].try_into().unwrap()), 5);
        assert_eq!(u32::from_ne_bytes(delete[8..12].try_into().unwrap()), 8);
        assert_eq!(delete[16], 10, "NFPROTO_IPV6");
        assert_eq!(&delete[24..35], b"kube-proxy\0");
        // Begin and end address the nftables subsystem (res_id, big-endian).
        assert_eq!(&b[18..20], &[0, 10]);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x10);
    }

    #[test]
    fn acks_are_matched_by_sequence() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&8u32.to_ne_bytes());
        ack.extend_from_slice(&0u32.to_ne_bytes());
        ack.extend_from_slice(&(-ENOENT).to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert_eq!(ack_for(&ack, 8), Some(-ENOENT));
        assert_eq!(ack_for(&ack, 9), None);
        assert_eq!(ack_for(&ack[..10], 8), None, "truncated: no answer");
    }
}
