//! ipsets over nfnetlink (NETLINK_NETFILTER, subsystem 6), without libipset or the CLI.
//!
//! | function | replaces |
//! |---|---|
//! | [`IpsetClient::create`] / [`IpsetClient::ensure`] | `ipset create` / `ipset -exist create` |
//! | [`IpsetClient::destroy`] | `ipset destroy SET` |
//! | [`IpsetClient::flush`] | `ipset flush SET` |
//! | [`IpsetClient::rename`] | `ipset rename FROM TO` |
//! | [`IpsetClient::swap`] | `ipset swap FROM TO` |
//! | [`IpsetClient::list`] / [`IpsetClient::header`] / [`IpsetClient::list_names`] / [`IpsetClient::list_all`] | `ipset list SET` / `list -t SET` / `list -n` / `list` |
//! | [`IpsetClient::add`] / [`IpsetClient::add_with_comment`] / [`IpsetClient::del`] / [`IpsetClient::test`] | `ipset add` / `add .. comment` / `del` / `test` |
//! | [`IpsetClient::add_batch`] / [`IpsetClient::del_batch`] / [`IpsetClient::update`] | `ipset -exist restore` of add / del lines |
//! | [`IpsetClient::sync`] / [`IpsetClient::sync_from`] | what kube-proxy does with one `ipset` process per changed entry |
//! | [`TrackedSet::apply`] | the same, costing O(change): pending inserts/removes only |
//! | [`IpsetClient::replace`] | `create tmp; restore; swap SET tmp; destroy tmp` |
//!
//! Protocol 7 is negotiated at connect (falling back to 6 on older kernels); a type's
//! revision is the highest both the kernel (TYPE request) and this codec know. Requests are
//! byte-identical to the `ipset` CLI's (`tests/captured.txt`, captured by `tests/capture.sh`
//! from ipset 7.17 on Linux 6.18). Wire rules the kernel enforces (ip_set_core.c): DATA, ADT
//! and address nests carry NLA_F_NESTED; addresses, ports, timeouts, CADT flags, hashsize,
//! maxelem and LINENO carry NLA_F_NET_BYTEORDER with big-endian values.
//!
//! Add and delete go without `NLM_F_EXCL` in batches, which the kernel treats like `-exist`,
//! so batches are idempotent. A batch is ADT messages of up to 64 KiB (the 16-bit nest
//! length), three per `sendmsg`; each entry carries its LINENO so a failure names the entry.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nodenet::ipset::IpsetError> {
//! use nodenet::AddressFamily;
//! use nodenet::ipset::{CreateSpec, Entry, IpsetClient, Protocol, SetType, TrackedSet};
//! let mut client = IpsetClient::connect().await?;
//! let mut spec = CreateSpec::hash("KUBE-CLUSTER-IP", SetType::HashIpPort, AddressFamily::Inet);
//! spec.maxelem = Some(262_144);
//! client.ensure(&spec).await?;
//! let mut set = TrackedSet::new("KUBE-CLUSTER-IP", client.members("KUBE-CLUSTER-IP").await?);
//! set.insert(Entry::IpPort { ip: "10.96.0.10".parse().unwrap(), proto: Protocol::Udp, port: 53 });
//! set.apply(&mut client).await?; // programs only what changed
//! # Ok(()) }
//! ```
//!
//! Files: `constants` (ip_set.h numbers), `attribute` (NLA encoding, total decoding),
//! `entry` (typed members and set types), `message` (netlink framing), `request` (typed
//! requests), `reply` (acks, errors, multipart LIST merging), `error`, `client` (socket,
//! timeouts, batches, sync, replace), `tracked` (incremental set state).

mod attribute;
mod client;
pub mod constants;
mod entry;
mod error;
mod message;
mod reply;
mod request;
mod tracked;

#[cfg(test)]
mod tests;

pub use client::{Config, IpsetClient, SyncStats, diff, temp_name};
pub use entry::{Entry, Member, Protocol, SetType};
pub use error::{DecodeError, EncodeError, IpsetError, IpsetOp, errno_name};
pub use message::{Messages, NlHeader};
pub use reply::{ListDecoder, ListedSet, Reply, SetHeader, decode_all, parse_reply};
pub use request::{AdtOp, CreateSpec, ListMode, Request};
pub use tracked::TrackedSet;
