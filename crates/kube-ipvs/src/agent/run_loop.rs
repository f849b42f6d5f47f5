//! The sync loop: when which sync runs.
//!
//! - Nothing touches the kernel before the sources deliver `Synced`.
//! - Start-up is a full sync (prepare, one full read, full plan): against an unchanged cluster it
//!   issues no op. Until one succeeds it is retried with backoff; events keep being ingested.
//! - Every kernel read runs in its own task (a full read takes seconds for a large table): a
//!   repair's full read or verification slice, a drain tick's counters, one at a time. Changes keep
//!   being synced incrementally meanwhile, and the ops they apply are replayed over the read
//!   before it is planned against. The next repair is due `syncPeriod` after the previous one
//!   ended.
//! - The periodic repair of a large table reads one slice of it per `syncPeriod`
//!   (`Timing::verify_slices`), the last slice of a cycle with the table's other parts: every
//!   entry is verified within `verify_slices` periods, and an idle node reads a fraction of its
//!   table per period. A slice is read in pieces (`Timing::verify_piece`) back to back, each
//!   planned and applied on its own, changes synced between them, so the loop's share of a
//!   repair is bounded by a piece, not by the table. A small table, start-up and a diverged view
//!   are read whole.
//! - Changes are coalesced: every queued event is ingested before a sync, and at most one sync
//!   runs per `minSyncPeriod`. A full repair runs at least every `syncPeriod`; incremental syncs
//!   in between plan only what changed.
//! - Refused ops are retried by the next sync, or after a backoff (1 s doubling up to
//!   `syncPeriod`) if nothing else changes; a failing kernel never ends the loop.
//! - The drain timer runs while real servers drain; its read waits for a running repair's.
//! - The retire timer runs while address changes a route makes moot wait (stock's bound
//!   ClusterIPs after a takeover): one bounded batch per tick, after pending changes.
//! - Cluster-wide figures (rejections, Services without a local endpoint), kept current by the
//!   index per change: reported after a full repair, else at most once a second after syncs.
//! - On shutdown the loop returns and leaves the kernel programmed (as kube-proxy does).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::error::AgentError;
use super::feed::EventFeed;
use super::intake::{Ingested, Intake};
use super::report::Observer;
use super::report::SyncKind;
use super::settings::{Settings, Timing};
use super::sync::{FetchedOf, Syncer};
use crate::engine::Engine;
use crate::kernel::Kernel;

/// Events ingested per batch before the loop checks its deadlines again.
const MAX_BATCH: usize = 4096;

/// How long the loop sleeps when nothing is due (it wakes for events and the read anyway).
const IDLE: Duration = Duration::from_secs(3600);

/// Pause between two retire ticks: the loop takes in events and runs change syncs first.
const RETIRE_PAUSE: Duration = Duration::from_millis(10);

/// The running read's result; pending forever when none runs.
async fn join<T>(h: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Exponential backoff between `min` and `max`.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The loop's deadlines.
#[derive(Debug)]
struct Clock {
    timing: Timing,
    /// Start of the last full or incremental sync (for `minSyncPeriod`).
    last_sync: Option<Instant>,
    /// The next full repair.
    full_due: Instant,
    /// Retry of refused ops when nothing else changes.
    retry_at: Option<Instant>,
    /// The next drain tick, while real servers drain.
    drain_at: Option<Instant>,
    /// The next retire tick, while moot address changes wait (`plan::retire`).
    retire_at: Option<Instant>,
    kernel_backoff: Backoff,
    retry_backoff: Backoff,
}

impl Clock {
    fn new(timing: Timing, now: Instant) -> Self {
        Self {
            timing,
            last_sync: None,
            full_due: now,
            retry_at: None,
            drain_at: None,
            retire_at: None,
            kernel_backoff: Backoff::new(timing.retry_min, timing.sync_period),
            retry_backoff: Backoff::new(timing.retry_min, timing.sync_period),
        }
    }

    /// The earliest time `minSyncPeriod` allows a sync.
    fn gate(&self, now: Instant) -> Instant {
        self.last_sync
            .map_or(now, |t| t + self.timing.min_sync_period)
    }

    fn full_at(&self, now: Instant) -> Instant {
        self.full_due.max(self.gate(now))
    }

    fn incremental_at<K: Kernel>(
        &self,
        s: &Syncer<K>,
        intake: &Intake,
        now: Instant,
    ) -> Option<Instant> {
        if s.needs_full() {
            return None;
        }
        if s.engine().has_changes() || intake.has_pending() {
            Some(self.gate(now))
        } else if s.wants_retry() {
            Some(self.gate(now).max(self.retry_at.unwrap_or(now)))
        } else {
            None
        }
    }

    /// After a full or incremental sync that started at `t`.
    fn synced<K: Kernel>(&mut self, s: &Syncer<K>, t: Instant, now: Instant) {
        self.last_sync = Some(t);
        if s.wants_retry() {
            self.retry_at = Some(now + self.retry_backoff.next());
        } else {
            self.retry_backoff.reset();
            self.retry_at = None;
        }
        if s.needs_full() {
            // The cached view is suspect: repair now (still bounded by minSyncPeriod).
            self.full_due = now;
        }
        self.drains(s, now);
        self.retires(s, now);
    }

    fn retires<K: Kernel>(&mut self, s: &Syncer<K>, now: Instant) {
        if !s.retire_pending() {
            self.retire_at = None;
        } else if self.retire_at.is_none() {
            self.retire_at = Some(now + RETIRE_PAUSE);
        }
    }

    fn drains<K: Kernel>(&mut self, s: &Syncer<K>, now: Instant) {
        if !s.adopted() || !s.draining() {
            self.drain_at = None;
        } else if self.drain_at.is_none() {
            self.drain_at = Some(now + self.timing.drain_interval);
        }
    }
}

/// Runs the agent until `shutdown` completes: sources -> engine -> kernel.
///
/// Returns `Ok` on shutdown (the kernel stays programmed) and an error only if the event feed
/// ends; kernel failures are logged, reported and retried.
pub async fn run_agent<K, F>(
    kernel: K,
    mut feed: F,
    settings: Settings,
    observer: Arc<dyn Observer>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError>
where
    K: Kernel,
    F: EventFeed,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let timing = settings.timing;
    let mut engine = Engine::new(settings.planner);
    let mut intake = Intake::new();

    tracing::info!("waiting for the initial lists before programming anything");
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            ev = feed.recv() => {
                let ev = ev.ok_or(AgentError::SourcesEnded)?;
                if intake.ingest(&mut engine, ev, &*observer) == Ingested::Synced {
                    break;
                }
            }
        }
    }
    let (services, ports) = engine.index().counts();
    tracing::info!(services, ports, "initial lists complete");

    let mut s = Syncer::new(kernel, engine, observer.clone())
        .publish_owners(settings.owners_path)
        .verify_slices(
            timing.verify_slices,
            timing.verify_slice_min,
            timing.verify_piece,
        );
    let mut clock = Clock::new(timing, Instant::now());
    // The running kernel read (a repair's full read or slice, a drain tick's counters): its own task,
    // so syncs of changes go on while it reads.
    let mut read: Option<JoinHandle<FetchedOf<K>>> = None;
    loop {
        let now = Instant::now();
        let mut wake = now + IDLE;
        if read.is_none() {
            wake = wake.min(clock.full_at(now));
            if let Some(t) = clock.drain_at {
                wake = wake.min(t);
            }
        }
        for t in [clock.incremental_at(&s, &intake, now), clock.retire_at]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        if let Some(t) = s.cluster_at() {
            wake = wake.min(t);
        }
        if wake > now {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                fetched = join(&mut read) => {
                    read = None;
                    let outcome = match fetched {
                        Ok(fetched) => s.finish_read(fetched, &mut intake).await,
                        Err(e) => Err((
                            s.abandon_read(),
                            crate::kernel::KernelError::Namespace {
                                op: "kernel read".into(),
                                source: std::io::Error::other(e.to_string()),
                            },
                        )),
                    };
                    let after = Instant::now();
                    match outcome {
                        Ok(SyncKind::Drain) => {
                            clock.drain_at = None;
                            clock.drains(&s, after);
                        }
                        Ok(_) => {
                            clock.kernel_backoff.reset();
                            // From the end: a repair longer than syncPeriod does not run back to
                            // back. A slice's pieces do, changes synced between them.
                            clock.full_due = if s.slice_pending() {
                                after
                            } else {
                                after + timing.sync_period
                            };
                            clock.synced(&s, after, after);
                        }
                        Err((SyncKind::Drain, e)) => {
                            tracing::warn!(error = %e, "drain tick: reading connection counters failed");
                            clock.drain_at = None;
                            clock.drains(&s, after);
                        }
                        Err((_, error)) => {
                            let wait = clock.kernel_backoff.next();
                            tracing::warn!(%error, retry_in = ?wait, "full sync failed; keeping the kernel as it is");
                            clock.full_due = after + wait;
                        }
                    }
                    if s.needs_full() {
                        clock.full_due = clock.full_due.min(after);
                    }
                    continue;
                }
                ev = feed.recv() => {
                    let ev = ev.ok_or(AgentError::SourcesEnded)?;
                    intake.ingest(s.engine_mut(), ev, &*observer);
                    // Coalesce: everything already queued joins the same sync.
                    for _ in 1..MAX_BATCH {
                        let Some(ev) = feed.try_recv() else { break };
                        intake.ingest(s.engine_mut(), ev, &*observer);
                    }
                    continue;
                }
                () = sleep_until(wake) => {}
            }
        }
        let now = Instant::now();
        if read.is_none() && now >= clock.full_at(now) {
            match s.start_repair().await {
                Ok(fetch) => read = Some(tokio::spawn(fetch)),
                Err(e) => {
                    let wait = clock.kernel_backoff.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "full sync failed; keeping the kernel as it is");
                    clock.full_due = Instant::now() + wait;
                }
            }
            continue;
        }
        if clock
            .incremental_at(&s, &intake, now)
            .is_some_and(|t| now >= t)
        {
            s.incremental(&mut intake).await;
            clock.synced(&s, now, Instant::now());
            continue;
        }
        if s.cluster_at().is_some_and(|t| now >= t) {
            s.report_cluster();
        }
        if read.is_none() && clock.drain_at.is_some_and(|t| now >= t) {
            match s.start_drain() {
                Some(fetch) => read = Some(tokio::spawn(fetch)),
                None => {
                    clock.drain_at = None;
                    clock.drains(&s, now);
                }
            }
            continue;
        }
        if clock.retire_at.is_some_and(|t| now >= t) {
            s.retire().await;
            clock.retire_at = None;
            clock.retires(&s, Instant::now());
        }
    }
    tracing::info!("shutting down; the kernel stays programmed");
    Ok(())
}
