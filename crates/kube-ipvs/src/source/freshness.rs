//! How fresh the Kubernetes source's view is: per kind, when its watch last showed a sign of life
//! (a list page, a watch response, an event or a bookmark).
//!
//! A healthy watch is never silent for long even in a quiet cluster: the API server sends a
//! bookmark to every watch about once a minute (the watch cache's `defaultBookmarkFrequency`) and
//! ends each watch after `timeoutSeconds`, when kube-runtime opens the next. A watch that stalls
//! without closing (a proxy or load balancer that stopped forwarding) is silent until
//! kube-runtime's idle timeout (`timeoutSeconds` + 5 s, 295 s by default) reopens it; an API
//! server that cannot be reached is silent until it answers again. Meanwhile the agent keeps
//! serving the last state it received, and reports how old it is: the
//! `kube_ipvs_watch_staleness_seconds` gauge, and a warning when a kind has been silent for
//! longer than [`STALE_AFTER`] (with a line when it is fresh again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::SourceKind;

/// Silence after which a kind's view is reported stale: two of the API server's one-minute
/// bookmark intervals.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// Not watched (the file source, or a kind the API server does not serve).
const UNWATCHED: u64 = u64::MAX;

/// Per-kind time of the last sign of life, shared by the watch tasks, the client layer that sees
/// bookmarks (`source::activity`), the staleness monitor and `/metrics`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Freshness(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    origin: Instant,
    /// Milliseconds from `origin` of the last sign of life per [`SourceKind`]; [`UNWATCHED`] for
    /// a kind not (or no longer) watched.
    last: [AtomicU64; SourceKind::ALL.len()],
}

fn index(kind: SourceKind) -> usize {
    match kind {
        SourceKind::Services => 0,
        SourceKind::EndpointSlices => 1,
        SourceKind::Node => 2,
        SourceKind::ServiceCidrs => 3,
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self::new()
    }
}

impl Freshness {
    /// Nothing watched yet.
    pub fn new() -> Self {
        Freshness(Arc::new(Inner {
            origin: Instant::now(),
            last: std::array::from_fn(|_| AtomicU64::new(UNWATCHED)),
        }))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.origin.elapsed().as_millis()).unwrap_or(UNWATCHED - 1)
    }

    /// `kind` is watched from now: its silence counts from this moment (a source that never
    /// reaches the API server turns stale too).
    pub fn watch(&self, kind: SourceKind) {
        self.touch(kind);
    }

    /// `kind` is not watched (not served by the API server): it is never stale.
    pub fn unwatch(&self, kind: SourceKind) {
        if let Some(a) = self.0.last.get(index(kind)) {
            a.store(UNWATCHED, Ordering::Relaxed);
        }
    }

    /// A sign of life of `kind`'s watch.
    pub fn touch(&self, kind: SourceKind) {
        if let Some(a) = self.0.last.get(index(kind)) {
            a.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How long `kind` has been silent; `None` when it is not watched.
    pub fn age(&self, kind: SourceKind) -> Option<Duration> {
        let last = self.0.last.get(index(kind))?.load(Ordering::Relaxed);
        (last != UNWATCHED).then(|| Duration::from_millis(self.now_ms().saturating_sub(last)))
    }

    /// [`Self::age`] of every watched kind.
    pub fn ages(&self) -> Vec<(SourceKind, Duration)> {
        SourceKind::ALL
            .iter()
            .filter_map(|&k| Some((k, self.age(k)?)))
            .collect()
    }
}

/// Logs each kind turning stale (silent longer than `stale_after`) and fresh again; runs until
/// aborted (with the source's other tasks).
pub async fn monitor(freshness: Freshness, stale_after: Duration) {
    let mut stale = [false; SourceKind::ALL.len()];
    let mut tick = tokio::time::interval((stale_after / 4).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for kind in SourceKind::ALL {
            let Some(flag) = stale.get_mut(index(kind)) else {
                continue;
            };
            let age = freshness.age(kind);
            let now_stale = age.is_some_and(|a| a > stale_after);
            if now_stale && !*flag {
                tracing::warn!(
                    kind = kind.name(),
                    silent_seconds = age.unwrap_or_default().as_secs(),
                    "watch stale: no event or bookmark from the API server; serving the last state it sent"
                );
            } else if !now_stale && *flag {
                tracing::info!(kind = kind.name(), "watch fresh again");
            }
            *flag = now_stale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ages_count_from_the_last_sign_of_life() {
        let f = Freshness::new();
        assert!(f.ages().is_empty(), "nothing watched");
        f.watch(SourceKind::Services);
        f.watch(SourceKind::ServiceCidrs);
        tokio::time::sleep(Duration::from_secs(3)).await;
        f.touch(SourceKind::Services);
        f.touch(SourceKind::Node); // a kind's first sign of life also starts its tracking
        tokio::time::sleep(Duration::from_secs(2)).await;
        f.unwatch(SourceKind::ServiceCidrs);
        assert_eq!(
            f.ages(),
            [
                (SourceKind::Services, Duration::from_secs(2)),
                (SourceKind::Node, Duration::from_secs(2)),
            ]
        );
        assert_eq!(f.age(SourceKind::EndpointSlices), None);
    }
}
