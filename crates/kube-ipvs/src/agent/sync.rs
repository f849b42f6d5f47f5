//! One sync of each kind, against the kernel: full repair (full read + full plan), verification
//! (a slice of a large table read afresh, what differs repaired), incremental (changed Services
//! against the cached kernel view) and drain (fresh real servers and connection counters of the
//! draining virtual servers only). Every kernel read runs on its own while other syncs go on, and
//! what they applied meanwhile is replayed over it. Each sync applies its plan, commits what the
//! kernel accepted, queues what it refused for the next sync, and reports to the [`Observer`].
//!
//! Connection counters are fresh only right after a read; in between, the cached view assumes
//! every real server may be busy, so an incremental plan drains rather than deletes.
//!
//! The timing (when which sync runs) is the loop's business (`run_loop`), not this module's.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::intake::{Intake, Pending};
use super::report::{Observer, SyncKind, SyncReport};
use crate::desired::HealthCheck;
use crate::engine::Engine;
use crate::kernel::{Kernel, KernelError, ReadScope};
use crate::plan::Op;
use crate::progress::Progress;
use crate::types::{RsKey, ServiceName, VsKey};

/// Refused ops logged one by one per sync; the rest are counted in one line.
const LOGGED_FAILURES: usize = 10;

/// Draining virtual servers whose counters one drain tick reads at most. The read is one GET_DEST
/// dump per virtual server (off the loop, on the read thread), so a backlog of thousands (a rollout)
/// is read over several ticks, each short. The others stay assumed busy until their turn.
const DRAIN_READ_MAX: usize = 128;

/// Moot address changes one retire tick applies at most (see `plan::retire`). Unbinding one of
/// 50,000 addresses costs the kernel a walk of the device's address list (~2 ms natively), so a
/// batch holds a change sync back by about 0.1 s.
const RETIRE_MAX: usize = 64;

/// The cluster-wide figures (kept current by the index, but copied and diffed against the last
/// report): during a burst of changes they are reported at most this often (and after every full
/// repair), not after each sync.
const CLUSTER_REPORT_EVERY: Duration = Duration::from_secs(1);

/// The engine and the kernel it programs.
pub struct Syncer<K> {
    kernel: K,
    engine: Engine,
    observer: Arc<dyn Observer>,
    /// Origin of the planner's clock (drain limits).
    epoch: Instant,
    /// Health-check servers last reported.
    health: Option<BTreeMap<ServiceName, HealthCheck>>,
    /// A full sync succeeded: the cached kernel view is valid.
    adopted: bool,
    /// The cached view may be wrong (a commit diverged): the next sync must be full.
    stale: bool,
    /// Writing the iptables rules failed: retried on the next sync.
    rules_failed: bool,
    /// Where the owners of the virtual servers are published.
    owners: Option<super::owners_file::OwnersFile>,
    /// The current set of virtual servers was handed to the owners file.
    owners_sent: bool,
    /// The kernel read that is running (one at a time).
    inflight: Option<Inflight>,
    /// A sync ran since the cluster-wide figures were last reported.
    cluster_due: bool,
    /// When they were last reported.
    cluster_reported: Option<Instant>,
    /// The last virtual server whose counters the previous drain tick read.
    drain_cursor: Option<VsKey>,
    /// The last virtual server the previous verification slice read (`None`: a cycle starts).
    verify_cursor: Option<VsKey>,
    /// Verification slices: how many a large table is read in, and their least size.
    verify: (usize, usize),
    /// The most virtual servers one piece of a slice reads.
    verify_piece: usize,
    /// Virtual servers of the current slice still to read (0: the next repair starts a slice).
    slice_left: usize,
    /// Since when retire ticks run, and the addresses they (un)bound so far.
    retiring: Option<(Instant, u64)>,
}

/// A kernel read between its start and its end.
struct Inflight {
    kind: SyncKind,
    started: (SystemTime, Instant),
    /// Ops the kernel accepted since the read started: it may or may not show them.
    replay: Vec<Op>,
    /// A verification piece: once it is read, where the next one starts (`None`: a cycle
    /// starts) and what is left of its slice.
    next_piece: Option<(Option<VsKey>, usize)>,
}

/// A finished kernel read, for [`Syncer::finish_read`] (`D`, `R`: the kernel's full and
/// partial read).
pub enum Fetched<D, R> {
    /// A full read.
    Full(D),
    /// A partial read (verification slice or drain tick).
    Partial(R),
}

/// A kernel's finished read.
pub type FetchedOf<K> = Fetched<<K as Kernel>::FullRead, <K as Kernel>::Read>;

impl<K: Kernel> Syncer<K> {
    /// A syncer over an engine already fed with the initial lists.
    pub fn new(kernel: K, engine: Engine, observer: Arc<dyn Observer>) -> Self {
        Self {
            kernel,
            engine,
            observer,
            epoch: Instant::now(),
            health: None,
            adopted: false,
            stale: false,
            rules_failed: false,
            owners: None,
            owners_sent: false,
            inflight: None,
            cluster_due: false,
            cluster_reported: None,
            drain_cursor: None,
            verify_cursor: None,
            verify: (
                super::settings::DEFAULT_VERIFY_SLICES,
                super::settings::DEFAULT_VERIFY_SLICE_MIN,
            ),
            verify_piece: super::settings::DEFAULT_VERIFY_PIECE,
            slice_left: 0,
            retiring: None,
        }
    }

    /// How many slices the periodic verification reads a large table in, their least size
    /// (tables up to that size are read whole), and the most virtual servers one piece of a
    /// slice reads.
    pub fn verify_slices(mut self, slices: usize, min: usize, piece: usize) -> Self {
        self.verify = (slices.max(1), min.max(1));
        self.verify_piece = piece.max(1);
        self
    }

    /// Whether the current verification slice has pieces left to read: the next repair reads
    /// the next piece at once, not `syncPeriod` later.
    pub fn slice_pending(&self) -> bool {
        self.slice_left > 0
    }

    /// Publishes the owner of each virtual server to `path` after every sync that added or
    /// removed virtual servers (for `kube-ipvs list --services`).
    pub fn publish_owners(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.owners = path.map(super::owners_file::OwnersFile::new);
        self
    }

    fn write_owners(&mut self, report: &SyncReport) {
        let Some(file) = &mut self.owners else {
            return;
        };
        // The owners follow the set of virtual servers: written once after start-up, then only
        // when a sync added or removed one (a no-op repair at 50k Services must not rewrite the
        // file), or again after a failed write. The file is written off the loop.
        let changed = !self.owners_sent
            || file.failed()
            || ["add_vs", "del_vs"]
                .iter()
                .any(|k| report.applied.contains_key(k));
        if !changed {
            return;
        }
        let node = self.engine.config().node_name.clone();
        file.publish(&node, self.engine.desired().virtual_servers().values());
        self.owners_sent = true;
    }

    /// The engine (the intake feeds it between syncs).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a full sync succeeded (incremental and drain syncs need its kernel view).
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Whether the next sync must be full (the cached kernel view may be wrong).
    pub fn needs_full(&self) -> bool {
        !self.adopted || self.stale
    }

    /// Whether refused ops or rules wait for a retry.
    pub fn wants_retry(&self) -> bool {
        self.engine.has_retries() || self.rules_failed
    }

    /// Whether real servers are draining.
    pub fn draining(&self) -> bool {
        self.engine.drain_backlog() > 0
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Starts the periodic repair: prepare, the node's addresses, then a kernel read that runs
    /// on its own (the returned future borrows nothing) while incremental syncs go on;
    /// [`Syncer::finish_read`] plans against it. The read is a full read at start-up, after the
    /// cached view diverged, or when the table is small; else the next verification slice. A
    /// kernel error here leaves everything as it was and is returned.
    pub async fn start_repair(
        &mut self,
    ) -> Result<impl Future<Output = FetchedOf<K>> + Send + 'static, KernelError> {
        let started = (SystemTime::now(), Instant::now());
        let scope = self.next_slice();
        let kind = if scope.is_some() {
            SyncKind::Verify
        } else {
            SyncKind::Full
        };
        // The node's own state is checked once per slice, by its first piece.
        let continuing = scope.is_some() && self.slice_pending();
        async {
            if continuing {
                return Ok(());
            }
            self.kernel.prepare().await?;
            let addrs = self.kernel.node_addresses().await?;
            if self.engine.set_node_addresses(addrs) {
                tracing::info!(addresses = ?self.engine.config().node_addresses, "node addresses");
            }
            let routes = self.kernel.node_routes().await?;
            if self.engine.set_node_routes(routes) {
                tracing::info!("a route bearing on a service CIDR changed");
            }
            Ok::<(), KernelError>(())
        }
        .instrument(sync_span(kind))
        .await?;
        self.inflight = Some(Inflight {
            kind,
            started,
            replay: Vec::new(),
            next_piece: None,
        });
        Ok(match scope {
            None => futures::future::Either::Left(futures::FutureExt::map(
                self.kernel.read_full(),
                Fetched::Full,
            )),
            Some((scope, left)) => {
                // Where the next piece starts, once this one is read (a failed read is retried).
                let next = scope.vs.last().copied().filter(|_| !scope.table);
                if let Some(r) = &mut self.inflight {
                    r.next_piece = Some((next, left));
                }
                futures::future::Either::Right(futures::FutureExt::map(
                    self.kernel.read(scope),
                    Fetched::Partial,
                ))
            }
        })
    }

    /// The next piece of a verification slice, with what is left of the slice after it, or
    /// `None` when the repair must read the whole table: the view was never adopted or
    /// diverged, or the table is at most one slice. A slice is the next `max(n / slices, min)`
    /// virtual servers of the cached view after the previous one, read in pieces of at most
    /// `verify_piece`; the last piece of a cycle also reads the table without real servers
    /// (specs, virtual servers added or removed behind our back, addresses, routes, sets). So
    /// with `n` stable, every entry is read at least once every `slices` periods.
    fn next_slice(&self) -> Option<(ReadScope, usize)> {
        let (slices, min) = self.verify;
        let vs = self.engine.observed().virtual_servers();
        if self.needs_full() || vs.len() <= min {
            return None;
        }
        let left = match self.slice_left {
            0 => vs.len().div_ceil(slices).max(min),
            left => left,
        };
        let rest = match &self.verify_cursor {
            Some(c) => vs.range((Bound::Excluded(*c), Bound::Unbounded)),
            None => vs.range(..),
        };
        let mut rest = rest.map(|(k, _)| *k);
        let keys: Vec<VsKey> = rest.by_ref().take(left.min(self.verify_piece)).collect();
        let table = rest.next().is_none();
        // The end of the table ends the slice and the cycle.
        let after = if table { 0 } else { left - keys.len() };
        Some((ReadScope { vs: keys, table }, after))
    }

    /// Starts the drain tick's read: the real servers and counters of up to [`DRAIN_READ_MAX`]
    /// draining virtual servers (taking turns), off the loop; `None` when nothing drains.
    pub fn start_drain(&mut self) -> Option<impl Future<Output = FetchedOf<K>> + Send + 'static> {
        let draining = drain_window(
            &self.engine.draining_vs(),
            self.drain_cursor.as_ref(),
            DRAIN_READ_MAX,
        );
        self.drain_cursor = Some(*draining.last()?);
        self.inflight = Some(Inflight {
            kind: SyncKind::Drain,
            started: (SystemTime::now(), Instant::now()),
            replay: Vec::new(),
            next_piece: None,
        });
        let read = self.kernel.read(ReadScope {
            vs: draining,
            table: false,
        });
        Some(futures::FutureExt::map(read, Fetched::Partial))
    }

    /// Ends the read [`Syncer::start_repair`] or [`Syncer::start_drain`] began: plans against
    /// it (with every op applied meanwhile replayed over it) and applies the plan. A failed read
    /// leaves everything as it was and is returned, with the kind of sync it was for.
    pub async fn finish_read(
        &mut self,
        fetched: FetchedOf<K>,
        intake: &mut Intake,
    ) -> Result<SyncKind, (SyncKind, KernelError)> {
        match fetched {
            Fetched::Full(d) => self
                .finish_full(d, intake)
                .await
                .map(|()| SyncKind::Full)
                .map_err(|e| (SyncKind::Full, e)),
            Fetched::Partial(r) => self.finish_partial(r, intake).await,
        }
    }

    async fn finish_partial(
        &mut self,
        read: K::Read,
        intake: &mut Intake,
    ) -> Result<SyncKind, (SyncKind, KernelError)> {
        let Some(inflight) = self.inflight.take() else {
            return Err((
                SyncKind::Verify,
                KernelError::Namespace {
                    op: "kernel read".into(),
                    source: std::io::Error::other("a read ended that was never started"),
                },
            ));
        };
        let kind = inflight.kind;
        let span = sync_span(kind);
        async {
            let plan_from = Instant::now();
            let read = self.kernel.adopt_read(read).map_err(|e| (kind, e))?;
            if let Some((next, left)) = inflight.next_piece {
                self.verify_cursor = next;
                self.slice_left = left;
            }
            tracing::Span::current().record("read_ms", ms(plan_from - inflight.started.1));
            // A drain tick plans draining virtual servers only; pending changes wait for their
            // own sync (which reports their latency).
            let changes = kind != SyncKind::Drain;
            let pending = if changes {
                intake.take_pending()
            } else {
                Pending::default()
            };
            let ops = self
                .engine
                .plan_read(read, &inflight.replay, changes, self.now());
            self.finish(kind, inflight.started, plan_from, pending, &ops, changes)
                .await;
            Ok(kind)
        }
        .instrument(span)
        .await
    }

    /// Ends a full repair: the full read, with every op applied since it started replayed over it
    /// (the read may have missed them), becomes the cached kernel view; the full plan against
    /// it is applied. A failed read leaves everything as it was and is returned.
    async fn finish_full(
        &mut self,
        read: K::FullRead,
        intake: &mut Intake,
    ) -> Result<(), KernelError> {
        let span = sync_span(SyncKind::Full);
        async {
            let plan_from = Instant::now();
            let repair = self.inflight.take();
            let mut observed = self.kernel.adopt(read)?;
            let (started, replay) = repair.map_or_else(
                || ((SystemTime::now(), plan_from), Vec::new()),
                |r| (r.started, r.replay),
            );
            tracing::Span::current().record("read_ms", ms(plan_from - started.1));
            for op in &replay {
                observed.replay(op);
            }
            self.engine.set_observed(observed);
            self.stale = false;
            // A full read verified everything: the next slice starts afresh.
            self.slice_left = 0;
            let pending = intake.take_pending();
            let mut ops = self.engine.plan_repair(self.now());
            if !self.adopted {
                self.hold_deletions_if_empty(&mut ops);
            }
            self.adopted = true;
            self.finish(SyncKind::Full, started, plan_from, pending, &ops, true)
                .await;
            self.engine.observed_mut().assume_busy(None);
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// When the cluster-wide figures are due ([`Observer::cluster`]), if a sync since the last
    /// report may have changed them.
    pub fn cluster_at(&self) -> Option<Instant> {
        self.cluster_due.then(|| {
            self.cluster_reported
                .map_or_else(Instant::now, |t| t + CLUSTER_REPORT_EVERY)
        })
    }

    /// Reports the cluster-wide figures: the index keeps them current per change, so this costs
    /// the rejections, not the cluster.
    pub fn report_cluster(&mut self) {
        let index = self.engine.index();
        let mut rejections = index.rejections();
        rejections.extend(
            self.engine
                .desired()
                .refused_cidrs()
                .iter()
                .map(|(o, r)| (o.clone(), r.clone())),
        );
        self.observer
            .cluster(&rejections, index.no_local_endpoints());
        self.cluster_due = false;
        self.cluster_reported = Some(Instant::now());
    }

    /// Forgets a read that never came back (its task failed); returns the kind of sync it was for.
    pub fn abandon_read(&mut self) -> SyncKind {
        self.inflight.take().map_or(SyncKind::Full, |r| r.kind)
    }

    /// On start-up, an empty Services list against a kernel full of our virtual servers is more
    /// likely a broken API server than an empty cluster: keep what is programmed until the next
    /// full sync confirms it.
    fn hold_deletions_if_empty(&mut self, ops: &mut Vec<Op>) {
        if self.engine.index().counts().0 > 0 {
            return;
        }
        let before = ops.len();
        ops.retain(|op| !destructive(op));
        if ops.len() < before {
            tracing::warn!(
                held = before - ops.len(),
                "the initial Services list is empty but the kernel holds programmed services: \
                 keeping them until the next full sync"
            );
        }
    }

    /// The incremental sync: changed Services and retries only, against the cached view.
    pub async fn incremental(&mut self, intake: &mut Intake) {
        let span = sync_span(SyncKind::Incremental);
        async {
            let started = (SystemTime::now(), Instant::now());
            let pending = intake.take_pending();
            let ops = self.engine.plan_incremental(self.now());
            let rules = !ops.is_empty() || self.rules_failed;
            self.finish(
                SyncKind::Incremental,
                started,
                started.1,
                pending,
                &ops,
                rules,
            )
            .await;
        }
        .instrument(span)
        .await;
    }

    /// Whether address changes a route makes moot wait for [`Syncer::retire`].
    pub fn retire_pending(&self) -> bool {
        self.adopted && self.engine.retire_pending()
    }

    /// The retire tick: one batch of at most [`RETIRE_MAX`] moot address changes.
    pub async fn retire(&mut self) {
        let span = sync_span(SyncKind::Retire);
        async {
            let started = (SystemTime::now(), Instant::now());
            let ops = self.engine.plan_retire(RETIRE_MAX);
            let (since, done) = self.retiring.get_or_insert_with(|| {
                tracing::info!(
                    batch = RETIRE_MAX,
                    "addresses a service-CIDR route covers: (un)binding them in batches"
                );
                (started.1, 0)
            });
            let since = *since;
            let addrs = ops
                .iter()
                .filter(|o| matches!(o, Op::BindAddr { .. } | Op::UnbindAddr { .. }))
                .count();
            *done += u64::try_from(addrs).unwrap_or(u64::MAX);
            if !self.engine.retire_pending() {
                tracing::info!(addresses = *done, took = ?since.elapsed(), "retiring done");
                self.retiring = None;
            }
            self.finish(
                SyncKind::Retire,
                started,
                started.1,
                Pending::default(),
                &ops,
                false,
            )
            .await;
        }
        .instrument(span)
        .await;
    }

    /// Applies, commits, queues retries, writes the rules, reports. `plan_from`: when planning
    /// began (a full sync's start also covers its read).
    async fn finish(
        &mut self,
        kind: SyncKind,
        (wall, t0): (SystemTime, Instant),
        plan_from: Instant,
        pending: Pending,
        ops: &[Op],
        rules: bool,
    ) {
        let mut report = SyncReport {
            kind,
            started: wall,
            duration: Duration::ZERO,
            applied: BTreeMap::new(),
            failed: BTreeMap::new(),
            refused: Vec::new(),
            rules_written: false,
            rules_failed: false,
            service_changes: pending.service_changes,
            endpoint_changes: pending.endpoint_changes,
            programming_latencies: Vec::new(),
            services: 0,
            drain_backlog: 0,
        };
        let span = tracing::Span::current();
        let applying = Instant::now();
        span.record("plan_ms", ms(applying - plan_from));
        self.apply(ops, &mut report).await;
        let writing = Instant::now();
        span.record("apply_ms", ms(writing - applying));
        if rules {
            let inputs = self.engine.desired().iptables_inputs();
            match self.kernel.sync_rules(&inputs).await {
                Ok(written) => {
                    report.rules_written = written;
                    self.rules_failed = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "writing the iptables rules failed; retrying next sync");
                    report.rules_failed = true;
                    self.rules_failed = true;
                }
            }
        }
        span.record("rules_ms", ms(writing.elapsed()));
        let done = SystemTime::now();
        report.programming_latencies = pending
            .since
            .iter()
            .map(|t| done.duration_since(*t).unwrap_or_default())
            .collect();
        report.duration = t0.elapsed();
        report.services = self.engine.desired().service_count();
        report.drain_backlog = self.engine.drain_backlog();
        self.report(&report);
        // Only changes move the cluster-wide figures.
        self.cluster_due |= kind == SyncKind::Full || !pending.is_empty();
        if kind == SyncKind::Full || self.cluster_at().is_some_and(|t| t <= Instant::now()) {
            self.report_cluster();
        }
    }

    /// Applies a plan in chunks of [`APPLY_CHUNK`] ops (the apply layer's per-op buffers
    /// follow the chunk, not the plan: 400,000 ops when programming an empty node), logging and
    /// publishing progress of a long one.
    async fn apply(&mut self, ops: &[Op], report: &mut SyncReport) {
        if ops.is_empty() {
            return;
        }
        let kind = report.kind;
        let mut progress = Progress::new(ops.len());
        for chunk in ops.chunks(APPLY_CHUNK) {
            self.apply_chunk(chunk, report).await;
            let due = progress.advance(chunk.len());
            self.observer
                .progress(kind, progress.done(), progress.total());
            if due {
                tracing::info!(
                    kind = kind.as_str(),
                    applied = progress.done(),
                    planned = progress.total(),
                    ops_per_second = progress.per_second(),
                    "programming the kernel"
                );
            }
        }
        if progress.was_long() {
            tracing::info!(
                kind = kind.as_str(),
                applied = progress.done(),
                seconds = progress.seconds(),
                ops_per_second = progress.per_second(),
                "programmed the kernel"
            );
        }
    }

    async fn apply_chunk(&mut self, ops: &[Op], report: &mut SyncReport) {
        let outcome = self.kernel.apply(ops).await;
        if let Some(r) = &mut self.inflight {
            r.replay.extend(outcome.succeeded(ops).cloned());
        }
        for op in outcome.succeeded(ops) {
            *report.applied.entry(op.kind()).or_default() += 1;
        }
        if let Err(e) = self.engine.commit(outcome.succeeded(ops)) {
            // The kernel accepted what the cache says cannot apply: trust neither, re-read.
            tracing::warn!(error = %e, "cached kernel view diverged; next sync is a full repair");
            self.stale = true;
        }
        // Real servers added now have no counters yet: assume they carry connections.
        let added: Vec<(VsKey, RsKey)> = outcome
            .succeeded(ops)
            .filter_map(|op| match op {
                Op::AddRs { vs, rs } => Some((*vs, rs.key)),
                _ => None,
            })
            .collect();
        let observed = self.engine.observed_mut();
        for (vs, rs) in &added {
            observed.set_connections(vs, rs, 0, 1);
        }
        let mut refused = Vec::new();
        for (op, err) in outcome.failures(ops) {
            *report.failed.entry(op.kind()).or_default() += 1;
            if report.refused.len() < crate::failures::MAX_LISTED {
                report.refused.push((op.clone(), err.to_string()));
            }
            if refused.len() < LOGGED_FAILURES {
                tracing::warn!(op = %op, error = %err, "kernel refused op; retrying next sync");
            }
            refused.push(op);
        }
        if refused.len() > LOGGED_FAILURES {
            tracing::warn!(
                refused = refused.len(),
                "kernel refused more ops (only the first {LOGGED_FAILURES} logged)"
            );
        }
        self.engine.retry(refused);
    }

    fn report(&mut self, report: &SyncReport) {
        let applied: u64 = report.applied.values().sum();
        let failed: u64 = report.failed.values().sum();
        let span = tracing::Span::current();
        span.record("applied", applied);
        span.record("failed", failed);
        span.record("services", report.services);
        span.record("service_changes", report.service_changes);
        span.record("endpoint_changes", report.endpoint_changes);
        span.record("drain_backlog", report.drain_backlog);
        span.record("duration_ms", ms(report.duration));
        // Retire batches (hundreds at 50,000 Services) log their start and end instead.
        let quiet = report.kind == SyncKind::Retire && failed == 0;
        if !quiet && (applied > 0 || failed > 0 || report.kind == SyncKind::Full) {
            let ops = report
                .applied
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            tracing::info!(rules_written = report.rules_written, %ops, "synced");
        } else {
            tracing::debug!("synced");
        }
        self.observer.synced(report);
        self.write_owners(report);
        let health = self.engine.desired().health_checks();
        if self.health.as_ref() != Some(health) {
            self.observer.health_checks(health);
            self.health = Some(health.clone());
        }
    }
}

/// Ops applied per call of the apply layer.
const APPLY_CHUNK: usize = 16_384;

/// Up to `max` keys of `draining` (sorted), starting after `after` and wrapping around.
fn drain_window(draining: &[VsKey], after: Option<&VsKey>, max: usize) -> Vec<VsKey> {
    let start = after.map_or(0, |a| draining.partition_point(|k| k <= a));
    draining
        .iter()
        .cycle()
        .skip(start)
        .take(max.min(draining.len()))
        .copied()
        .collect()
}

fn sync_span(kind: SyncKind) -> tracing::Span {
    tracing::info_span!(
        "sync",
        kind = kind.as_str(),
        applied = Empty,
        failed = Empty,
        services = Empty,
        service_changes = Empty,
        endpoint_changes = Empty,
        drain_backlog = Empty,
        duration_ms = Empty,
        read_ms = Empty,
        plan_ms = Empty,
        apply_ms = Empty,
        rules_ms = Empty,
    )
}

/// Milliseconds, for the sync span's timing fields.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Ops that remove or weaken something programmed.
fn destructive(op: &Op) -> bool {
    match op {
        Op::DelVs { .. }
        | Op::DelRs { .. }
        | Op::IpsetDel { .. }
        | Op::UnbindAddr { .. }
        | Op::DelRoute { .. }
        | Op::ClearConntrack { .. } => true,
        Op::UpdateRs { rs, .. } => rs.weight == 0,
        Op::AddRoute { .. }
        | Op::BindAddr { .. }
        | Op::IpsetAdd { .. }
        | Op::AddVs { .. }
        | Op::UpdateVs { .. }
        | Op::AddRs { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Proto;

    fn keys(n: u8) -> Vec<VsKey> {
        (0..n)
            .map(|i| VsKey::new(Proto::Tcp, [10, 96, 0, i].into(), 80))
            .collect()
    }

    #[test]
    fn drain_ticks_take_turns_over_a_large_backlog() {
        let all = keys(5);
        let first = drain_window(&all, None, 2);
        assert_eq!(first, all[0..2]);
        let second = drain_window(&all, first.last(), 2);
        assert_eq!(second, all[2..4]);
        // Wraps around; never more than the backlog, never a key twice.
        assert_eq!(drain_window(&all, second.last(), 2), [all[4], all[0]]);
        assert_eq!(drain_window(&all, None, 9), all);
        // The cursor's key has finished draining meanwhile: the next one after it.
        let rest: Vec<VsKey> = all.iter().copied().filter(|k| *k != all[1]).collect();
        assert_eq!(drain_window(&rest, Some(&all[1]), 2), all[2..4]);
        assert!(drain_window(&[], Some(&all[0]), 2).is_empty());
    }
}
