//! The node agent (`kube-ipvs run`): sources -> engine -> kernel, with health, metrics and events
//! attached through [`Observer`].
//!
//! | module | what |
//! |---|---|
//! | [`report`] | [`SyncReport`], [`ChangeKind`], the [`Observer`] hooks telemetry implements |

pub mod report;

pub use report::{ChangeKind, NoopObserver, Observer, SyncKind, SyncReport};
