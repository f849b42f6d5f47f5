//! Generic-netlink client for the Linux IP Virtual Server (IPVS): what `ipvsadm` does, typed,
//! batched and bounded in time.
//!
//! Two layers:
//! - a **codec** with no I/O, modelled on the rust-netlink crates: one module per object, attribute
//!   enums named after `include/uapi/linux/ip_vs.h`, an `Other(DefaultNla)` arm so unknown
//!   attributes survive a round trip, and total decoders (any bytes give a value or a
//!   [`DecodeError`], never a panic);
//! - an async [`Client`] (tokio) with a batched, pipelined [`Client::apply`].
//!
//! | module | ipvsadm command | netlink command |
//! |---|---|---|
//! | [`service`] | `-A`, `-E`, `-D`, `-L` | NEW/SET/DEL/GET_SERVICE |
//! | [`destination`] | `-a`, `-e`, `-d`, `-L` | NEW/SET/DEL/GET_DEST |
//! | [`stats`] | `-L --stats`, `--rate`, `-Z` | STATS/STATS64 nests, ZERO |
//! | [`info`] | `-L` header line (version, size) | GET_INFO / SET_INFO |
//! | [`config`] | `--set`, `-L --timeout` | SET_CONFIG / GET_CONFIG |
//! | [`daemon`] | `-L --daemon` | GET_DAEMON |
//! | [`message`], [`frame`] | everything: the message and its netlink framing | |
//! | [`procfs`] | `cat /proc/net/ip_vs` (fast full-table read) | |
//! | [`Client`] | all of the above, plus `-C` (FLUSH) and `-R` (as [`Client::apply`]) | |
//!
//! ```no_run
//! # async fn demo() -> Result<(), ipvs_netlink::Error> {
//! use ipvs_netlink::{Client, Destination, IpvsOp, SchedulerName, Service, VirtualServiceKey};
//! let mut ipvs = Client::connect().await?; // this thread's network namespace
//! let key = VirtualServiceKey::tcp("10.96.0.10".parse().unwrap(), 53);
//! let ops = [
//!     IpvsOp::AddService(Service::new(key, SchedulerName::rr())),
//!     IpvsOp::AddDestination(key, Destination::masq("10.244.1.5".parse().unwrap(), 53, 1)),
//! ];
//! for (op, result) in ops.iter().zip(ipvs.apply(&ops).await) {
//!     if let Err(e) = result {
//!         eprintln!("{}: {e}", op.name());
//!     }
//! }
//! let table = ipvs.snapshot().await?; // the whole table from /proc/net/ip_vs, one read
//! # let _ = table; Ok(()) }
//! ```
//!
//! Kernel facts worth knowing: IPVS is per network namespace; a namespace without any address
//! has no local routing table and refuses IPv4 destinations with `EINVAL` (bring `lo` up);
//! a GET_DEST dump of a missing service is empty rather than an error; one socket runs one dump
//! at a time, so [`Client::table`] costs one round trip per service while
//! [`Client::snapshot`] reads `/proc/net/ip_vs` (weights and connection counts) at once.
#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
pub mod destination;
mod error;
mod family;
pub mod frame;
pub mod info;
pub mod message;
mod nla;
pub mod procfs;
mod request;
pub mod service;
pub mod stats;

mod client;

pub use client::{Client, ClientOptions, Error, IpvsOp, Table, TableService};
pub use config::Timeouts;
pub use daemon::{Daemon, DaemonState};
pub use destination::{Destination, ForwardMethod, TunnelFlags, TunnelType};
pub use error::DecodeError;
pub use family::Protocol;
pub use info::Info;
pub use message::{IpvsAttribute, IpvsCmd, IpvsMessage};
pub use netlink_transport::{AddressFamily, BatchOutcome, Errno, Failure, Faults};
pub use nla::RawAddr;
pub use service::{SchedulerName, Service, ServiceFlags, VirtualServiceKey};
pub use stats::Stats;
