//! The node agent (`kube-ipvs run`): sources -> engine -> kernel, with health, metrics and events
//! attached through [`Observer`] (telemetry implements it; [`crate::daemon`] wires the two, so
//! this module never imports telemetry).
//!
//! | module | what |
//! |---|---|
//! | [`settings`] | configuration -> planner configuration, families, loop timings |
//! | [`feed`] | [`EventFeed`]: the running sources, or a channel in tests |
//! | [`intake`] | cluster events -> engine calls; re-lists as diffs; change counts and times |
//! | `delivered` | which objects of a kind were delivered: what a streamed list's end removes |
//! | `sync` | one full / incremental / drain sync against the kernel, reported to the observer |
//! | `owners_file` | the owners file (`kube-ipvs list --services`), written off the loop |
//! | `run_loop` | [`run_agent`]: when which sync runs (gate on `Synced`, coalescing, periods, retries, drains) |
//! | [`report`] | [`SyncReport`], [`ChangeKind`], the [`Observer`] hooks telemetry implements |

mod delivered;
mod error;
pub mod feed;
pub mod intake;
mod owners_file;
pub mod report;
mod run_loop;
pub mod settings;
mod sync;

pub use error::AgentError;
pub use feed::EventFeed;
pub use report::{ChangeKind, NoopObserver, Observer, SyncKind, SyncReport};
pub use run_loop::run_agent;
pub use settings::{Settings, Timing};
