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
//! | [`IpsetClient::add_batch`] / [`IpsetClient::del_batch`] | `ipset -exist restore` of add / del lines |
//! | [`IpsetClient::sync`] / [`IpsetClient::sync_from`] | what kube-proxy does with one `ipset` process per changed entry |
//! | [`TrackedSet::apply`] | the same, costing O(change): pending inserts/removes only |
//! | [`IpsetClient::replace`] | `create tmp; restore; swap SET tmp; destroy tmp` |
//!
//! Protocol 7 is negotiated at connect (falling back to 6 on older kernels); a type's
//! revision is the highest both the kernel (TYPE request) and this codec know. Requests are
//! byte-identical to the `ipset` CLI's (see `tests/captured.txt` and how it was captured).
//! Add and delete without `NLM_F_EXCL` behave like `-exist`, so batches are idempotent.
//!
//! Files: `constants` (ip_set.h), `attribute` (NLA encode, total decode), `entry` (typed
//! members and set types), `message` (netlink framing), `request` (typed requests), `reply` (acks, errors,
//! multipart LIST merging), `error`,
//! `client` (socket, timeouts, batches, sync, replace), `tracked` (incremental set state).

mod attribute;
mod client;
mod constants;
mod entry;
mod error;
mod message;
mod reply;
mod request;
mod tracked;

#[cfg(test)]
mod tests;

pub use client::{Config, IpsetClient, SyncStats, diff, temp_name};
pub use entry::{Entry, Family, Member, Protocol, SetType};
pub use error::{DecodeError, EncodeError, IpsetError, Op, errno_name};
pub use message::{Messages, NlHeader};
pub use reply::{ListDecoder, ListedSet, Reply, SetHeader, decode_all, parse_reply};
pub use request::{AdtOp, CreateSpec, ListMode, Request};
pub use tracked::TrackedSet;
