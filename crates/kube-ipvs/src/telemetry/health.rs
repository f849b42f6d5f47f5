//! The proxy's own health, with stock kube-proxy's semantics (`pkg/proxy/healthcheck`,
//! `proxier_health.go`), served as `/healthz` and `/livez` on `healthzBindAddress`:
//!
//! - healthy while no change is pending, or the oldest pending change was queued less than
//!   `2 x syncPeriod` ago (a sync that fails to write the rules does not count as an update);
//! - `/healthz` is also 503 while the node is not eligible: being deleted, or tainted
//!   `ToBeDeletedByClusterAutoscaler` (so load balancers drain it first); `/livez` ignores that;
//! - the body is stock's JSON, timestamps in Go's format, `lastUpdated` = `currentTime` when
//!   healthy (stock keeps that for old probes that compared the two).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::gotime;
use super::http::{Handler, not_found, respond};
use super::metrics::Metrics;
use super::pending::{Counts, PendingChanges};
use crate::agent::{ChangeKind, SyncReport};

/// The wall clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// One evaluation of the proxy's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthStatus {
    /// The proxy has no change pending for too long (what `/livez` and the health-check node
    /// ports' `serviceProxyHealthy` report).
    pub healthy: bool,
    /// The last successful rules sync.
    pub last_updated: Option<SystemTime>,
    /// When this was evaluated.
    pub current_time: SystemTime,
    /// See [`crate::model::node_eligible`].
    pub node_eligible: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: PendingChanges,
    last_updated: Option<SystemTime>,
}

struct Inner {
    timeout: Duration,
    clock: Clock,
    state: Mutex<State>,
    node_eligible: AtomicBool,
    metrics: Arc<Metrics>,
}

/// The shared health state (cheap to clone).
#[derive(Clone)]
pub struct ProxyHealth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProxyHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHealth")
            .field("timeout", &self.inner.timeout)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl ProxyHealth {
    /// Unhealthy once a change has been pending for `timeout` (stock: 2 x syncPeriod). The node
    /// counts as eligible until told otherwise, as in stock.
    pub fn new(timeout: Duration, clock: Clock, metrics: Arc<Metrics>) -> Self {
        ProxyHealth {
            inner: Arc::new(Inner {
                timeout,
                clock,
                state: Mutex::new(State::default()),
                node_eligible: AtomicBool::new(true),
                metrics,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere (plain values), so keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A change was queued at `at`; returns the pending counts after it.
    pub fn queued(&self, kind: ChangeKind, at: SystemTime) -> Counts {
        let mut s = self.state();
        s.pending.queued(kind, at);
        s.pending.counts()
    }

    /// A sync finished; returns the pending counts after it.
    pub fn synced(&self, report: &SyncReport) -> Counts {
        let mut s = self.state();
        // The drain and retire timers cover no queued change; a failed rules write is not an
        // update.
        if report.kind.syncs_changes() && !report.rules_failed {
            s.pending.synced(report.started);
            s.last_updated = Some((self.inner.clock)());
        }
        s.pending.counts()
    }

    /// Sets whether the node is eligible (see [`crate::model::node_eligible`]).
    pub fn set_node_eligible(&self, eligible: bool) {
        self.inner.node_eligible.store(eligible, Ordering::Relaxed);
    }

    /// Evaluates the health now.
    pub fn status(&self) -> HealthStatus {
        let (oldest, last_updated) = {
            let s = self.state();
            (s.pending.oldest(), s.last_updated)
        };
        let now = (self.inner.clock)();
        let healthy = match oldest {
            None => true,
            // A clock step backwards reads as "just queued": healthy, like stock's Sub < timeout.
            Some(q) => now.duration_since(q).unwrap_or_default() < self.inner.timeout,
        };
        HealthStatus {
            healthy,
            last_updated,
            current_time: now,
            node_eligible: self.inner.node_eligible.load(Ordering::Relaxed),
        }
    }

    /// The proxy's health ignoring the node (`serviceProxyHealthy`).
    pub fn is_healthy(&self) -> bool {
        self.status().healthy
    }

    /// `GET /healthz`.
    pub fn healthz(&self) -> Response<Full<Bytes>> {
        let st = self.status();
        let healthy = st.healthy && st.node_eligible;
        let (code, last) = code_and_last(healthy, &st);
        self.inner.metrics.healthz(code.as_u16());
        let body = format!(
            "{{\"lastUpdated\": \"{}\",\"currentTime\": \"{}\", \"nodeEligible\": {}}}",
            last,
            gotime::format(Some(st.current_time)),
            st.node_eligible
        );
        respond(code, "application/json", body)
    }

    /// `GET /livez`.
    pub fn livez(&self) -> Response<Full<Bytes>> {
        let st = self.status();
        let (code, last) = code_and_last(st.healthy, &st);
        self.inner.metrics.livez(code.as_u16());
        let body = format!(
            "{{\"lastUpdated\": \"{}\",\"currentTime\": \"{}\"}}",
            last,
            gotime::format(Some(st.current_time))
        );
        respond(code, "application/json", body)
    }

    /// The `healthzBindAddress` routes.
    pub fn handler(&self) -> Handler {
        let h = self.clone();
        Arc::new(move |parts: &Parts| match parts.uri.path() {
            "/healthz" => h.healthz(),
            "/livez" => h.livez(),
            _ => not_found(),
        })
    }
}

fn code_and_last(healthy: bool, st: &HealthStatus) -> (StatusCode, String) {
    if healthy {
        (StatusCode::OK, gotime::format(Some(st.current_time)))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            gotime::format(st.last_updated),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::agent::SyncKind;
    use crate::telemetry::http::{HttpServer, test_client};
    use crate::types::Family;

    /// A clock the test moves by hand (seconds since the epoch).
    #[derive(Clone, Default)]
    pub struct ManualClock(Arc<AtomicU64>);

    impl ManualClock {
        pub fn at(secs: u64) -> Self {
            Self(Arc::new(AtomicU64::new(secs)))
        }
        pub fn set(&self, secs: u64) {
            self.0.store(secs, Ordering::SeqCst);
        }
        pub fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
        }
        pub fn clock(&self) -> Clock {
            let me = self.clone();
            Arc::new(move || me.now())
        }
    }

    pub fn report(kind: SyncKind, started: SystemTime) -> SyncReport {
        SyncReport {
            kind,
            started,
            duration: Duration::from_millis(1),
            applied: BTreeMap::new(),
            failed: BTreeMap::new(),
            refused: Vec::new(),
            rules_written: false,
            rules_failed: false,
            service_changes: 0,
            endpoint_changes: 0,
            programming_latencies: vec![],
            services: 0,
            drain_backlog: 0,
        }
    }

    #[tokio::test]
    async fn healthz_goes_503_when_a_queued_change_is_stale_and_back_after_a_sync() {
        let clock = ManualClock::at(1_000);
        let metrics = Arc::new(Metrics::new(&[Family::V4]));
        // syncPeriod 30 s -> timeout 60 s
        let h = ProxyHealth::new(Duration::from_secs(60), clock.clock(), metrics.clone());
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), h.handler())
            .await
            .unwrap();
        let addr = server.local_addr();

        // Starting up: healthy, never updated.
        let r = test_client::get(addr, "/healthz").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["currentTime"], "1970-01-01 00:16:40 +0000 UTC");
        assert_eq!(v["lastUpdated"], v["currentTime"]);
        assert_eq!(v["nodeEligible"], true);

        // A change queued at 1000 and not synced: fine at 1059, 503 at 1060.
        h.queued(ChangeKind::Endpoints, clock.now());
        clock.set(1_059);
        assert_eq!(
            test_client::get(addr, "/healthz").await.unwrap().status,
            200
        );
        clock.set(1_060);
        let r = test_client::get(addr, "/healthz").await.unwrap();
        assert_eq!(r.status, 503);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["lastUpdated"], gotime::ZERO);
        assert_eq!(test_client::get(addr, "/livez").await.unwrap().status, 503);

        // A sync that failed to write the rules does not help; the drain timer neither.
        let mut failed = report(SyncKind::Incremental, clock.now());
        failed.rules_failed = true;
        h.synced(&failed);
        h.synced(&report(SyncKind::Drain, clock.now()));
        assert_eq!(
            test_client::get(addr, "/healthz").await.unwrap().status,
            503
        );

        // A sync that started after the change covers it.
        h.synced(&report(SyncKind::Incremental, clock.now()));
        let r = test_client::get(addr, "/livez").await.unwrap();
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["currentTime"], "1970-01-01 00:17:40 +0000 UTC");
        assert!(v.get("nodeEligible").is_none());

        // The healthz/livez counters.
        let text = metrics.encode_text();
        let m = crate::telemetry::metrics::tests::parse(&text);
        assert_eq!(m["kubeproxy_proxy_healthz_total{code=\"200\"}"], 2.0);
        assert_eq!(m["kubeproxy_proxy_healthz_total{code=\"503\"}"], 2.0);
        assert_eq!(m["kubeproxy_proxy_livez_total{code=\"503\"}"], 1.0);
        assert_eq!(m["kubeproxy_proxy_livez_total{code=\"200\"}"], 1.0);
        assert_eq!(test_client::get(addr, "/other").await.unwrap().status, 404);
    }

    #[tokio::test]
    async fn node_not_eligible_fails_healthz_only() {
        let clock = ManualClock::at(5);
        let h = ProxyHealth::new(
            Duration::from_secs(60),
            clock.clock(),
            Arc::new(Metrics::new(&[])),
        );
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), h.handler())
            .await
            .unwrap();
        h.set_node_eligible(false);
        let r = test_client::get(server.local_addr(), "/healthz")
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["nodeEligible"], false);
        let r = test_client::get(server.local_addr(), "/livez")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(h.is_healthy());
    }
}
