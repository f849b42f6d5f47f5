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

pub use client::{Client, ClientOptions, Error, Op, Table, TableService};
pub use config::Timeouts;
pub use daemon::{Daemon, DaemonState};
pub use destination::{Destination, ForwardMethod, TunnelFlags, TunnelType};
pub use error::DecodeError;
pub use family::{AddressFamily, Protocol};
pub use info::Info;
pub use message::{IpvsAttribute, IpvsCmd, IpvsMessage};
pub use nla::RawAddr;
pub use service::{Scheduler, Service, ServiceFlags, ServiceKey};
pub use stats::Stats;
