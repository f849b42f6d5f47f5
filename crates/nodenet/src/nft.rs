//! Deleting an nftables table by name (`nft delete table ip NAME`) over nfnetlink, without the
//! `nft` binary: one `NFT_MSG_DELTABLE` in its own batch transaction, on the one transport.
//!
//! kube-proxy's IPVS mode deletes the nftables proxier's tables (`ip kube-proxy`, `ip6
//! kube-proxy`) when it starts, because their DNAT rules run in prerouting, before IPVS sees the
//! packets, and would keep sending Service traffic to the endpoints they last knew.

use netlink_transport::wire::{self, Header, NLM_F_ACK};
use netlink_transport::{Errno, Error as TransportError, NETLINK_NETFILTER, Transport};

use crate::SocketOptions;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_DELTABLE: u16 = 2;
const NFTA_TABLE_NAME: u16 = 1;
/// The answers to one deletion are a few dozen bytes.
const RCVBUF: usize = 64 << 10;

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
    /// The kernel refused the deletion, or the socket failed (timeouts included).
    #[error("delete table {family} {table}: {source}")]
    Delete {
        /// `ip` or `ip6`.
        family: &'static str,
        /// The table.
        table: String,
        /// What went wrong, with its errno.
        #[source]
        source: TransportError,
    },
}

impl NftError {
    /// The errno, when there is one (`ETIMEDOUT` for a timeout).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NftError::Delete { source, .. } => source.errno(),
        }
    }
}

/// Appends one nfnetlink message (sequence number and `NLM_F_REQUEST` are the transport's).
fn message(buf: &mut Vec<u8>, kind: u16, flags: u16, family: u8, res_id: u16, attrs: &[u8]) {
    let start = buf.len();
    Header {
        len: 0,
        kind,
        flags,
        seq: 0,
        pid: 0,
    }
    .emit(buf);
    buf.push(family);
    buf.push(0); // NFNETLINK_V0
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(attrs);
    let _ = wire::finish(buf, start);
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

/// Appends the batch `nft delete table FAMILY NAME` sends: begin, delete (acknowledged), end.
pub fn delete_request(buf: &mut Vec<u8>, family: NftFamily, name: &str) {
    message(buf, NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
    message(
        buf,
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE,
        NLM_F_ACK,
        family.nfproto(),
        0,
        &name_attr(name),
    );
    message(buf, NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
}

/// Deletes table `name` of `family` in the namespace `opts` names. `Ok(true)`: it existed and
/// is gone; `Ok(false)`: there was no such table.
pub async fn delete_table(
    family: NftFamily,
    name: &str,
    opts: &SocketOptions,
) -> Result<bool, NftError> {
    let failed = |source| NftError::Delete {
        family: family.name(),
        table: name.to_owned(),
        source,
    };
    let mut sock = Transport::connect(opts.transport(NETLINK_NETFILTER, RCVBUF))
        .await
        .map_err(failed)?;
    let res = sock
        .transaction(|buf| {
            delete_request(buf, family, name);
            Ok::<_, TransportError>(())
        })
        .await;
    match res {
        Ok(()) => Ok(true),
        Err(TransportError::Kernel(Errno::ENOENT)) => Ok(false),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_what_nft_sends() {
        let mut b = Vec::new();
        delete_request(&mut b, NftFamily::Ip6, "kube-proxy");
        // begin (20) + delete (20 + attribute 4 + "kube-proxy\0" padded to 12) + end (20)
        assert_eq!(b.len(), 20 + 36 + 20);
        let delete = &b[20..56];
        assert_eq!(u32::from_ne_bytes(delete[0..4].try_into().unwrap()), 36);
        assert_eq!(u16::from_ne_bytes(delete[4..6].try_into().unwrap()), 0x0a02);
        assert_eq!(
            u16::from_ne_bytes(delete[6..8].try_into().unwrap()),
            NLM_F_ACK
        );
        assert_eq!(delete[16], 10, "NFPROTO_IPV6");
        assert_eq!(&delete[24..35], b"kube-proxy\0");
        // Begin and end address the nftables subsystem (res_id, big-endian), unacknowledged.
        assert_eq!(&b[18..20], &[0, 10]);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x10);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0);
        assert_eq!(u16::from_ne_bytes(b[60..62].try_into().unwrap()), 0x11);
    }
}
