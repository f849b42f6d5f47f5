//! Ops the kernel refused and that still wait for their retry: published by the agent for
//! `kube-ipvs explain` ("failed ops for this Service"), next to the owners file.
//!
//! The agent ([`crate::telemetry::Telemetry`]) keeps a [`FailureLog`] from its sync reports and
//! rewrites the file only when a sync was refused an op or ended failures (never while nothing
//! fails), so a healthy node writes it once, at start-up.
//!
//! File format (JSON, one object): `{"version":1,"total":1,"failed":[{"op":"rs add TCP
//! 10.96.0.1:80 -> 10.244.1.5:8080 w 1","kind":"add_rs","target":"TCP  10.96.0.1:80","error":
//! "...","since":1760000000,"attempts":3}]}`. `target` is what the op changes (see [`target`]),
//! so a reader matches failures to a Service by the targets of its own state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::agent::{SyncKind, SyncReport};
use crate::owners::{self, OwnersError};
use crate::plan::Op;

/// Where the agent publishes its failing ops by default.
pub const DEFAULT_PATH: &str = "/run/kube-ipvs/failures.json";

const VERSION: u32 = 1;

/// Failing ops a sync report carries and the file lists at most (a mass failure is summarized
/// by `total`).
pub const MAX_LISTED: usize = 1000;

/// What an op changes, as a stable string: the virtual server (`TCP  10.96.0.1:80`) for virtual
/// and real server ops and conntrack clean-ups, the address for dummy-device ops, `SET ENTRY` for
/// ipset ops, `route CIDR` for routes.
pub fn target(op: &Op) -> String {
    match op {
        Op::AddVs { key, .. } | Op::UpdateVs { key, .. } | Op::DelVs { key } => key.to_string(),
        Op::AddRs { vs, .. }
        | Op::UpdateRs { vs, .. }
        | Op::DelRs { vs, .. }
        | Op::ClearConntrack { vs, .. } => vs.to_string(),
        Op::BindAddr { addr } | Op::UnbindAddr { addr } => addr.to_string(),
        Op::IpsetAdd { set, entry } | Op::IpsetDel { set, entry } => format!("{set} {entry}"),
        Op::AddRoute { cidr } | Op::DelRoute { cidr } => format!("route {cidr}"),
    }
}

/// One op the kernel refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedOp {
    /// The op as `kube-ipvs plan --against-kernel` prints it.
    pub op: String,
    /// Its kind (`add_rs`, ...), as in `kube_ipvs_ops_total`.
    pub kind: String,
    /// What it changes ([`target`]).
    pub target: String,
    /// The kernel's answer, last time.
    pub error: String,
    /// First refusal (Unix seconds).
    pub since: u64,
    /// Syncs that tried it and were refused (the file is rewritten at each).
    pub attempts: u32,
}

/// The failing ops of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// File format version (written as the current one).
    #[serde(default)]
    pub version: u32,
    /// Ops failing now (all of them, even beyond the listed ones).
    pub total: u64,
    /// The failing ops, at most 1000, sorted by target then op.
    pub failed: Vec<FailedOp>,
}

impl Failures {
    /// The failing ops whose target is one of `targets`.
    pub fn of<'a>(&'a self, targets: &'a [String]) -> impl Iterator<Item = &'a FailedOp> + 'a {
        self.failed.iter().filter(|f| targets.contains(&f.target))
    }

    /// The JSON text of the file.
    pub fn to_json(&self) -> String {
        let form = Self {
            version: VERSION,
            ..self.clone()
        };
        // Plain strings and numbers always serialize.
        let mut s = serde_json::to_string(&form).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses the file's text (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, OwnersError> {
        owners::parse_published(text, path, "failures", VERSION, |f: &Self| f.version)
    }

    /// Reads the file.
    pub fn read(path: &Path) -> Result<Self, OwnersError> {
        Self::from_json(&owners::read_text(path)?, path)
    }

    /// Writes the file whole (readers see the old or the new content).
    pub fn write_atomic(&self, path: &Path) -> Result<(), OwnersError> {
        owners::write_atomic(path, self.to_json().as_bytes())
    }
}

/// The failing ops, followed through the agent's sync reports.
///
/// Every full and incremental sync re-plans all ops refused before (the engine's retry set), so
/// after one of them the failing ops are exactly the ones it had refused; a drain sync only adds
/// its own refusals (it re-plans draining virtual servers alone).
#[derive(Debug, Default)]
pub struct FailureLog {
    failing: BTreeMap<(String, String), FailedOp>,
    total: u64,
    path: Option<PathBuf>,
    written: bool,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl FailureLog {
    /// A log published to `path` (`None`: kept in memory only).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            ..Self::default()
        }
    }

    /// Takes one sync's report; returns whether the failing set changed.
    pub fn observe(&mut self, report: &SyncReport) -> bool {
        let now = unix(report.started);
        let mut next = if report.kind == SyncKind::Drain {
            self.failing.clone()
        } else {
            BTreeMap::new()
        };
        for (op, error) in &report.refused {
            let key = (target(op), op.to_string());
            let (since, attempts) = self
                .failing
                .get(&key)
                .map_or((now, 0), |f| (f.since, f.attempts));
            next.insert(
                key.clone(),
                FailedOp {
                    op: key.1,
                    kind: op.kind().to_string(),
                    target: key.0,
                    error: error.clone(),
                    since,
                    attempts: attempts.saturating_add(1),
                },
            );
        }
        let failed: u64 = report.failed.values().sum();
        let total = if report.kind == SyncKind::Drain {
            self.total.saturating_add(failed)
        } else {
            failed
        }
        .max(next.len() as u64);
        let changed = next != self.failing || total != self.total;
        self.failing = next;
        self.total = total;
        changed
    }

    /// The current failing ops.
    pub fn failures(&self) -> Failures {
        Failures {
            version: VERSION,
            total: self.total,
            failed: self.failing.values().take(MAX_LISTED).cloned().collect(),
        }
    }

    /// Takes a report and rewrites the file if the failing set changed (or was never written).
    pub fn publish(&mut self, report: &SyncReport) {
        let changed = self.observe(report);
        let Some(path) = &self.path else { return };
        if self.written && !changed {
            return;
        }
        match self.failures().write_atomic(path) {
            Ok(()) => self.written = true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish failed ops for `kube-ipvs explain`")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::types::{Proto, RealServer, VsKey};

    fn add_rs(last: u8) -> Op {
        Op::AddRs {
            vs: VsKey::new(Proto::Tcp, [10, 96, 0, 1].into(), 80),
            rs: RealServer::masq([10, 244, 0, last].into(), 8080),
        }
    }

    fn report(kind: SyncKind, at: u64, refused: &[Op]) -> SyncReport {
        let mut r = crate::telemetry::health::tests::report(
            kind,
            SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        );
        for op in refused {
            r.refused.push((op.clone(), "ENOMEM".into()));
            *r.failed.entry(op.kind()).or_default() += 1;
        }
        r
    }

    #[test]
    fn a_refused_op_stays_until_a_sync_that_retries_it_succeeds() {
        let mut log = FailureLog::new(None);
        assert!(!log.observe(&report(SyncKind::Full, 10, &[])));
        assert!(log.observe(&report(SyncKind::Incremental, 20, &[add_rs(5)])));
        let f = log.failures();
        assert_eq!(f.total, 1);
        let one = &f.failed[0];
        assert_eq!(one.target, "TCP  10.96.0.1:80");
        assert_eq!(one.kind, "add_rs");
        assert_eq!((one.since, one.attempts), (20, 1));
        assert_eq!(one.error, "ENOMEM");

        // Refused again: the same failure, one more attempt.
        assert!(log.observe(&report(SyncKind::Incremental, 21, &[add_rs(5)])));
        assert_eq!(log.failures().failed[0].attempts, 2);
        assert_eq!(log.failures().failed[0].since, 20);
        // A drain sync adds its own refusals and keeps the others.
        assert!(log.observe(&report(SyncKind::Drain, 22, &[add_rs(6)])));
        assert_eq!(log.failures().failed.len(), 2);
        // The retry (an incremental sync) succeeded: nothing fails any more.
        assert!(log.observe(&report(SyncKind::Incremental, 23, &[])));
        assert_eq!(
            log.failures(),
            Failures {
                version: 1,
                ..Failures::default()
            }
        );
    }

    #[test]
    fn the_file_round_trips_and_is_rewritten_only_on_change() {
        let dir = std::env::temp_dir().join(format!("failures-test-{}", std::process::id()));
        let path = dir.join("failures.json");
        let mut log = FailureLog::new(Some(path.clone()));
        log.publish(&report(SyncKind::Full, 10, &[]));
        assert_eq!(
            Failures::read(&path).unwrap().total,
            0,
            "written at start-up"
        );
        log.publish(&report(SyncKind::Incremental, 11, &[add_rs(5)]));
        let read = Failures::read(&path).unwrap();
        assert_eq!(read, log.failures());
        let targets = vec!["TCP  10.96.0.1:80".to_string()];
        assert_eq!(read.of(&targets).count(), 1);
        assert_eq!(read.of(&["10.96.0.1".to_string()]).count(), 0);
        log.publish(&report(SyncKind::Incremental, 12, &[]));
        std::fs::remove_file(&path).unwrap();
        log.publish(&report(SyncKind::Full, 13, &[]));
        log.publish(&report(SyncKind::Incremental, 14, &[]));
        assert!(
            !path.exists(),
            "nothing failing, nothing changed: not rewritten"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let e = Failures::from_json(r#"{"version":2,"total":0,"failed":[]}"#, &path).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a kube-ipvs failures file: version 2"),
            "{e}"
        );
    }
}
