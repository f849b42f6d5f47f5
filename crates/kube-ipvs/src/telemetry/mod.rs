//! Health, metrics, health-check node ports, Events and logging of `kube-ipvs run`, attached to
//! the sync loop through [`crate::agent::Observer`] ([`Telemetry`] implements it).
//!
//! | module | what | stock counterpart |
//! |---|---|---|
//! | [`metrics`] | the `/metrics` registry: `kubeproxy_*` names, types, labels, buckets + `kube_ipvs_*` | `pkg/proxy/metrics` |
//! | [`health`] | `/healthz`, `/livez`: pending-too-long and node-eligibility semantics, JSON body | `proxier_health.go` |
//! | [`healthcheck`] | per-Service servers on `healthCheckNodePort`s | `service_health.go` |
//! | [`events`] | Events on rejected objects, rate-limited | - |
//! | [`logging`] | the `tracing` subscriber (`--log-format`, `RUST_LOG`) | klog |
//! | [`http`] | the small hyper server all of them use | `net/http` |
//! | `pending`, `process`, `gotime` | queued-change tracking, `process_*` metrics, Go timestamps | - |
//!
//! The hooks never block: metrics are atomics, health is a short mutex, health-check sockets are
//! opened by their own task (fed through a watch channel), Events go through a bounded queue.
//!
//! ```no_run
//! # async fn f(config: kube_ipvs::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kube_ipvs::telemetry::{Telemetry, TelemetryOptions};
//! let telemetry = Arc::new(Telemetry::new(&config, TelemetryOptions::default()));
//! let _handles = telemetry.start().await?; // keep: dropping stops the servers
//! // pass `telemetry.clone()` to the sync loop as its `Observer`
//! # Ok(()) }
//! ```

pub mod events;
mod gotime;
pub mod health;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod metrics;
mod pending;
mod process;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use ::http::StatusCode;
use ::http::request::Parts;
use kube::runtime::events::Reporter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::events::{EventSink, RateLimit, RejectionEvents};
use self::health::{Clock, ProxyHealth};
use self::healthcheck::{HealthCheckServers, Wanted};
use self::http::{Handler, HttpServer, not_found, respond};
use self::metrics::Metrics;
use crate::agent::{ChangeKind, Observer, SyncReport};
use crate::config::Config;
use crate::desired::HealthCheck;
use crate::failures::FailureLog;
use crate::model::{ObjectRef, Rejection};
use crate::source::freshness::Freshness;
use crate::types::{Family, ServiceName};

/// How often a healthz or metrics address that could not be bound is retried (stock: 5 s).
const BIND_RETRY: Duration = Duration::from_secs(5);

/// What [`Telemetry`] needs beyond the [`Config`].
pub struct TelemetryOptions {
    /// IP families the node proxies (the `ip_family` label); IPv4 when empty.
    pub ip_families: Vec<Family>,
    /// Addresses the health-check node ports listen on (the node-port addresses); all when empty.
    pub health_check_ips: Vec<IpAddr>,
    /// Where Events go: `None` for the file source.
    pub events: Option<(kube::Client, Reporter)>,
    /// The sources' freshness, for `kube_ipvs_watch_staleness_seconds` (Kubernetes source).
    pub freshness: Option<Freshness>,
    /// Event rate limits.
    pub event_limit: RateLimit,
    /// The wall clock (tests inject one).
    pub clock: Clock,
    /// Where the ops the kernel refused are published for `kube-ipvs explain` (`None`: not).
    pub failures_path: Option<std::path::PathBuf>,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        TelemetryOptions {
            ip_families: vec![Family::V4],
            health_check_ips: Vec::new(),
            events: None,
            freshness: None,
            event_limit: RateLimit::default(),
            clock: health::system_clock(),
            failures_path: None,
        }
    }
}

impl std::fmt::Debug for TelemetryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryOptions")
            .field("ip_families", &self.ip_families)
            .field("health_check_ips", &self.health_check_ips)
            .field("events", &self.events.as_ref().map(|(_, r)| r))
            .field("event_limit", &self.event_limit)
            .field("failures_path", &self.failures_path)
            .finish_non_exhaustive()
    }
}

/// Starting the servers failed (only with `bindAddressHardFail`; otherwise binds are retried).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The healthz or metrics address cannot be bound.
    #[error("binding the {server} server on {addr}: {source}")]
    Bind {
        /// `healthz` or `metrics`.
        server: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// [`Telemetry::start`] was called twice.
    #[error("telemetry already started")]
    AlreadyStarted,
}

type Publisher = (
    mpsc::Receiver<(ObjectRef, Rejection)>,
    kube::Client,
    Reporter,
);

/// Metrics, health, health-check servers and Events of one agent.
pub struct Telemetry {
    metrics: Arc<Metrics>,
    health: ProxyHealth,
    health_checks: watch::Sender<Wanted>,
    health_check_ips: Vec<IpAddr>,
    events: Mutex<RejectionEvents>,
    failures: Mutex<FailureLog>,
    publisher: Mutex<Option<Publisher>>,
    started: Mutex<bool>,
    origin: Instant,
    healthz_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    hard_fail: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("healthz_addr", &self.healthz_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// A healthz or metrics server: serving, or waiting to retry its bind.
#[derive(Debug)]
pub enum ServerSlot {
    /// Bound and serving.
    Serving(HttpServer),
    /// The address was busy; a task retries every 5 s.
    Retrying(AbortOnDrop),
}

impl ServerSlot {
    /// The bound address, when serving.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            ServerSlot::Serving(s) => Some(s.local_addr()),
            ServerSlot::Retrying(_) => None,
        }
    }
}

/// A task aborted when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What [`Telemetry::start`] runs; dropping it stops everything.
#[derive(Debug)]
pub struct TelemetryHandles {
    /// `/healthz` and `/livez` (absent when `healthzBindAddress` is empty).
    pub healthz: Option<ServerSlot>,
    /// `/metrics` (absent when `metricsBindAddress` is empty).
    pub metrics: Option<ServerSlot>,
    /// The health-check servers' task.
    pub health_checks: AbortOnDrop,
    /// Open health-check servers and their addresses, after each change.
    pub open_health_checks: watch::Receiver<BTreeMap<ServiceName, Vec<SocketAddr>>>,
    /// The Event publisher (Kubernetes source only).
    pub events: Option<AbortOnDrop>,
}

impl Telemetry {
    /// Built from the agent's configuration: bind addresses, `bindAddressHardFail`, and the
    /// health timeout of 2 x `syncPeriod`.
    pub fn new(config: &Config, opts: TelemetryOptions) -> Self {
        let mut metrics = Metrics::new(&opts.ip_families);
        if let Some(f) = opts.freshness {
            metrics.watch_freshness(f);
        }
        let metrics = Arc::new(metrics);
        let timeout = config.sync.period.saturating_mul(2);
        let health = ProxyHealth::new(timeout, opts.clock, metrics.clone());
        let (sink, publisher) = match opts.events {
            Some((client, reporter)) => {
                let (sink, rx) = EventSink::channel();
                (sink, Some((rx, client, reporter)))
            }
            None => (EventSink::Disabled, None),
        };
        Telemetry {
            metrics,
            health,
            health_checks: watch::Sender::new(Arc::default()),
            health_check_ips: opts.health_check_ips,
            events: Mutex::new(RejectionEvents::new(sink, opts.event_limit)),
            failures: Mutex::new(FailureLog::new(opts.failures_path)),
            publisher: Mutex::new(publisher),
            started: Mutex::new(false),
            origin: Instant::now(),
            healthz_addr: config.healthz_bind_address,
            metrics_addr: config.metrics_bind_address,
            hard_fail: config.bind_address_hard_fail,
        }
    }

    /// Starts the servers and tasks (inside a tokio runtime). A busy healthz or metrics address
    /// is an error with `bindAddressHardFail`, otherwise logged and retried every 5 s, as stock.
    pub async fn start(&self) -> Result<TelemetryHandles, TelemetryError> {
        {
            let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
            if *started {
                return Err(TelemetryError::AlreadyStarted);
            }
            *started = true;
        }
        let healthz = match self.healthz_addr {
            Some(addr) => Some(self.server("healthz", addr, self.health.handler()).await?),
            None => None,
        };
        let metrics = match self.metrics_addr {
            Some(addr) => Some(self.server("metrics", addr, self.metrics_handler()).await?),
            None => None,
        };
        let servers = HealthCheckServers::new(self.health_check_ips.clone(), self.health.clone());
        let (task, open_health_checks) = servers.spawn(self.health_checks.subscribe());
        let publisher = self
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let events = publisher.map(|(rx, client, reporter)| {
            AbortOnDrop(events::spawn_publisher(rx, client, reporter))
        });
        Ok(TelemetryHandles {
            healthz,
            metrics,
            health_checks: AbortOnDrop(task),
            open_health_checks,
            events,
        })
    }

    async fn server(
        &self,
        name: &'static str,
        addr: SocketAddr,
        handler: Handler,
    ) -> Result<ServerSlot, TelemetryError> {
        match HttpServer::bind(addr, handler.clone()).await {
            Ok(s) => {
                tracing::info!(server = name, addr = %s.local_addr(), "serving");
                Ok(ServerSlot::Serving(s))
            }
            Err(source) if self.hard_fail => Err(TelemetryError::Bind {
                server: name,
                addr,
                source,
            }),
            Err(e) => {
                tracing::warn!(server = name, %addr, error = %e, "cannot bind; retrying every 5s");
                Ok(ServerSlot::Retrying(AbortOnDrop(tokio::spawn(retry_bind(
                    name, addr, handler,
                )))))
            }
        }
    }

    /// The `metricsBindAddress` routes, as stock: `/metrics`, `/healthz` (plain `ok`, the
    /// generic apiserver check), `/proxyMode`.
    pub fn metrics_handler(&self) -> Handler {
        let metrics = self.metrics.clone();
        Arc::new(move |parts: &Parts| match parts.uri.path() {
            "/metrics" => metrics.response(parts),
            "/healthz" | "/healthz/ping" => {
                respond(StatusCode::OK, "text/plain; charset=utf-8", "ok")
            }
            "/proxyMode" => respond(StatusCode::OK, "text/plain; charset=utf-8", "ipvs"),
            _ => not_found(),
        })
    }

    /// The metrics in the classic Prometheus text format (what `/metrics` serves by default).
    pub fn metrics_text(&self) -> String {
        self.metrics.encode_text()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The proxy's health state.
    pub fn health(&self) -> &ProxyHealth {
        &self.health
    }

    /// Whether the node is eligible for traffic (not being deleted, not tainted
    /// `ToBeDeletedByClusterAutoscaler`); see [`crate::model::node_eligible`]. Call on every Node update.
    pub fn set_node_eligible(&self, eligible: bool) {
        self.health.set_node_eligible(eligible);
    }
}

async fn retry_bind(name: &'static str, addr: SocketAddr, handler: Handler) {
    loop {
        tokio::time::sleep(BIND_RETRY).await;
        match HttpServer::bind(addr, handler.clone()).await {
            Ok(server) => {
                tracing::info!(server = name, %addr, "serving after retry");
                // Hold the server until this task is aborted.
                let _server = server;
                std::future::pending::<()>().await;
            }
            Err(e) => tracing::debug!(server = name, %addr, error = %e, "bind retry failed"),
        }
    }
}

impl Observer for Telemetry {
    fn node_eligible(&self, eligible: bool) {
        self.set_node_eligible(eligible);
    }

    fn queued(&self, kind: ChangeKind, at: SystemTime) {
        let pending = self.health.queued(kind, at);
        self.metrics.queued(kind, at, pending);
    }

    fn progress(&self, _kind: crate::agent::SyncKind, done: usize, planned: usize) {
        self.metrics.progress(done, planned);
    }

    fn synced(&self, report: &SyncReport) {
        let pending = self.health.synced(report);
        self.metrics.synced(report, pending);
        // A small file rewritten only while ops fail (and once at start-up).
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .publish(report);
    }

    fn cluster(&self, current: &BTreeMap<ObjectRef, Rejection>, no_local_endpoints: (u64, u64)) {
        self.metrics.no_local_endpoints(no_local_endpoints);
        let mut by_reason: BTreeMap<&'static str, u64> = BTreeMap::new();
        for r in current.values() {
            *by_reason.entry(r.reason()).or_default() += 1;
        }
        self.metrics.rejections(&by_reason);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(current, self.origin.elapsed());
    }

    fn health_checks(&self, wanted: &BTreeMap<ServiceName, HealthCheck>) {
        self.health_checks.send_replace(Arc::new(wanted.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::agent::SyncKind;
    use crate::model::ObjectKind;
    use crate::telemetry::health::tests::{ManualClock, report};
    use crate::telemetry::http::test_client::{closes, get, get_with};
    use crate::telemetry::metrics::tests::parse;

    fn config() -> Config {
        let defaults = Config::default();
        Config {
            healthz_bind_address: Some("127.0.0.1:0".parse().unwrap()),
            metrics_bind_address: Some("127.0.0.1:0".parse().unwrap()),
            sync: crate::config::SyncPeriods {
                period: Duration::from_secs(30),
                ..defaults.sync
            },
            ..defaults
        }
    }

    #[tokio::test]
    async fn observer_drives_servers_and_metrics() {
        let clock = ManualClock::at(10_000);
        let t = Arc::new(Telemetry::new(
            &config(),
            TelemetryOptions {
                health_check_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
                clock: clock.clock(),
                ..TelemetryOptions::default()
            },
        ));
        let mut h = t.start().await.unwrap();
        assert!(matches!(
            t.start().await,
            Err(TelemetryError::AlreadyStarted)
        ));
        let healthz = h.healthz.as_ref().unwrap().local_addr().unwrap();
        let metrics = h.metrics.as_ref().unwrap().local_addr().unwrap();
        let obs: Arc<dyn Observer> = t.clone();

        // A change pending longer than 2 x 30 s makes /healthz 503.
        obs.queued(ChangeKind::Service, clock.now());
        clock.set(10_061);
        assert_eq!(get(healthz, "/healthz").await.unwrap().status, 503);
        let mut r = report(SyncKind::Full, clock.now());
        r.service_changes = 1;
        obs.synced(&r);
        assert_eq!(get(healthz, "/healthz").await.unwrap().status, 200);

        // Rejections become a gauge by reason.
        let obj = ObjectRef {
            kind: ObjectKind::Service,
            namespace: "ns".into(),
            name: "bad".into(),
        };
        obs.cluster(&BTreeMap::from([(obj, Rejection::MissingName)]), (0, 0));

        // Health-check servers follow the hook.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = ServiceName::new("ns", "lb");
        obs.health_checks(&BTreeMap::from([(
            key.clone(),
            HealthCheck {
                port,
                local_endpoints: 1,
            },
        )]));
        let addrs = loop {
            h.open_health_checks.changed().await.unwrap();
            if let Some(a) = h.open_health_checks.borrow_and_update().get(&key) {
                break a.clone();
            }
        };
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        let r = get(addrs[0], "/").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);

        // /metrics: classic text by default, OpenMetrics on request; stock side routes.
        let r = get(metrics, "/metrics").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let v = parse(&r.body);
        assert_eq!(v["kubeproxy_sync_proxy_rules_service_changes_total"], 1.0);
        assert_eq!(v["kubeproxy_sync_proxy_rules_service_changes_pending"], 0.0);
        assert_eq!(v["kube_ipvs_rejected_objects{reason=\"MissingName\"}"], 1.0);
        assert_eq!(v["kubeproxy_proxy_healthz_total{code=\"503\"}"], 1.0);
        assert!(v["process_resident_memory_bytes"] > 0.0);
        assert!(v.contains_key("process_cpu_seconds_total"));
        // The same registry is readable without HTTP (for tests of the agent).
        assert!(
            t.metrics_text()
                .contains("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram")
        );
        let om = get_with(
            metrics,
            "/metrics",
            &[("Accept", "application/openmetrics-text")],
        )
        .await
        .unwrap();
        assert!(
            om.header("content-type")
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert!(om.body.ends_with("# EOF\n"));
        assert_eq!(get(metrics, "/healthz").await.unwrap().body, "ok");
        assert_eq!(get(metrics, "/proxyMode").await.unwrap().body, "ipvs");
        assert_eq!(get(metrics, "/nope").await.unwrap().status, 404);

        // Dropping the handles stops every server.
        drop(h);
        assert!(closes(healthz).await);
        assert!(closes(metrics).await);
        assert!(closes(addrs[0]).await);
    }

    #[tokio::test]
    async fn busy_address_fails_only_with_hard_fail() {
        let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = config();
        c.healthz_bind_address = Some(blocker.local_addr().unwrap());
        c.metrics_bind_address = None;
        c.bind_address_hard_fail = true;
        let t = Telemetry::new(&c, TelemetryOptions::default());
        let e = t.start().await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("binding the healthz server on 127.0.0.1:"),
            "{e}"
        );

        c.bind_address_hard_fail = false;
        let t = Telemetry::new(&c, TelemetryOptions::default());
        let h = t.start().await.unwrap();
        assert!(matches!(h.healthz, Some(ServerSlot::Retrying(_))));
        assert!(h.metrics.is_none());
    }
}
