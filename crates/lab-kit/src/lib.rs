//! The lab-test toolkit: what the kernel tests and benches of every crate need around the code
//! under test, written once (dev-dependency only; see ARCHITECTURE.md).
//!
//! - [`netns`]: a fresh network namespace per test thread, so no test sees another's (or the
//!   host's) kernel state;
//! - [`sh`]: shell one-liners for setup and for the reference tools' view (`ipvsadm`, `ip`);
//! - [`process`]: a program fed on its stdin (`ipset restore`, `ipvsadm -R`);
//! - [`cost`]: wall and CPU time of a step, ours or a child's, for the benches;
//! - [`backend`]: backends behind veths, as pods on other nodes, with a small TCP server;
//! - [`objects`]: Kubernetes Services, EndpointSlices and Nodes as JSON.
//!
//! A helper panics on failure: in a test or bench, the panic is the report.
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)]

pub mod backend;
pub mod cost;
pub mod netns;
pub mod objects;
pub mod process;
pub mod sh;

pub use netns::{NetnsThread, enter_fresh_netns};
pub use sh::{ipvsadm_lines, sh, sh_ok, sh_output, sh_try};
