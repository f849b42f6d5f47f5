//! The `/metrics` registry: stock kube-proxy's `kubeproxy_*` metrics with their names, types,
//! labels and buckets (as of Kubernetes 1.33, `pkg/proxy/metrics`), so existing dashboards and
//! alerts keep working, plus kube-ipvs's own `kube_ipvs_*`.
//!
//! Stock runs one proxier per IP family and labels most metrics with `ip_family`; kube-ipvs
//! programs both families in one sync, so those series are written once per configured family
//! with the same values (what a dual-stack stock node shows when both proxiers sync).
//!
//! The registry encodes OpenMetrics; scrapers that do not ask for it get the classic Prometheus
//! text format (see [`to_prometheus_text`]), like client_golang's content negotiation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

use super::http::respond;
use super::pending::Counts;
use super::process;
use crate::agent::{SyncKind, SyncReport};
use crate::source::freshness::Freshness;
use crate::types;

/// The `ip_family` label: `IPv4`/`IPv6`, as stock spells it (`v1.IPFamily`).
impl EncodeLabelValue for types::Family {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), fmt::Error> {
        fmt::Write::write_fmt(encoder, format_args!("{self}"))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    ip_family: types::Family,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    ip_family: types::Family,
    traffic_policy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Labels of `kube_ipvs_build_info`, named as in stock's `kubernetes_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfoLabels {
    git_version: &'static str,
    git_commit: &'static str,
    build_date: &'static str,
    compiler: &'static str,
    platform: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// `kubeproxy_sync_*proxy_rules_duration_seconds`: `ExponentialBuckets(0.001, 2, 15)`.
fn sync_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The stock network-programming buckets. Stock's `MergeBuckets` starts from a zero-length slot,
/// so the series has an `le="0"` bucket; it is kept for identical series.
pub fn network_programming_buckets() -> Vec<f64> {
    std::iter::once(0.0)
        .chain(linear_buckets(0.25, 0.25, 2))
        .chain(linear_buckets(1.0, 1.0, 59))
        .chain(linear_buckets(60.0, 5.0, 12))
        .chain(linear_buckets(120.0, 30.0, 7))
        .collect()
}

fn network_programming_histogram() -> Histogram {
    Histogram::new(network_programming_buckets())
}

/// The metrics of one agent.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Vec<types::Family>,
    sync_duration: HistogramFamily<FamilyLabels>,
    sync_full_duration: HistogramFamily<FamilyLabels>,
    sync_partial_duration: HistogramFamily<FamilyLabels>,
    network_programming: HistogramFamily<FamilyLabels>,
    last_timestamp: Family<FamilyLabels, FloatGauge>,
    last_queued: Family<FamilyLabels, FloatGauge>,
    service_changes_pending: Gauge,
    service_changes_total: Counter,
    endpoint_changes_pending: Gauge,
    endpoint_changes_total: Counter,
    no_local_endpoints: Family<PolicyLabels, Gauge>,
    restore_failures: Family<FamilyLabels, Counter>,
    healthz: Family<CodeLabels, Counter>,
    livez: Family<CodeLabels, Counter>,
    ops: Family<OpLabels, Counter>,
    syncs: Family<SyncLabels, Counter>,
    rejected: Family<ReasonLabels, Gauge>,
    drain_backlog: Gauge,
    services: Gauge,
    sync_ops: Family<ProgressLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgressLabels {
    state: &'static str,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A registry whose `ip_family` series are written for `families` (IPv4 when empty).
    pub fn new(families: &[types::Family]) -> Self {
        let mut families = families.to_vec();
        families.sort();
        families.dedup();
        if families.is_empty() {
            families.push(types::Family::V4);
        }
        let hist = |f: fn() -> Histogram| Family::new_with_constructor(f);
        let m = Metrics {
            registry: Registry::default(),
            families,
            sync_duration: hist(sync_duration_histogram),
            sync_full_duration: hist(sync_duration_histogram),
            sync_partial_duration: hist(sync_duration_histogram),
            network_programming: hist(network_programming_histogram),
            last_timestamp: Family::default(),
            last_queued: Family::default(),
            service_changes_pending: Gauge::default(),
            service_changes_total: Counter::default(),
            endpoint_changes_pending: Gauge::default(),
            endpoint_changes_total: Counter::default(),
            no_local_endpoints: Family::default(),
            restore_failures: Family::default(),
            healthz: Family::default(),
            livez: Family::default(),
            ops: Family::default(),
            syncs: Family::default(),
            rejected: Family::default(),
            drain_backlog: Gauge::default(),
            services: Gauge::default(),
            sync_ops: Family::default(),
        };
        m.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        // prometheus-client appends `_total` to counter names on output.
        r.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            self.sync_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            self.sync_full_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            self.sync_partial_duration.clone(),
        );
        r.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            self.network_programming.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            self.last_timestamp.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            self.last_queued.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes",
            self.service_changes_pending.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            self.service_changes_total.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules Endpoint changes",
            self.endpoint_changes_pending.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            self.endpoint_changes_total.clone(),
        );
        // A gauge despite its `_total` suffix, as in stock.
        r.register(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            self.no_local_endpoints.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures",
            "Cumulative proxy iptables restore failures",
            self.restore_failures.clone(),
        );
        r.register(
            "kubeproxy_proxy_healthz",
            "Cumulative proxy healthz HTTP status",
            self.healthz.clone(),
        );
        r.register(
            "kubeproxy_proxy_livez",
            "Cumulative proxy livez HTTP status",
            self.livez.clone(),
        );
        r.register(
            "kube_ipvs_ops",
            "Kernel operations by kind and result (applied or failed; failed ones are retried)",
            self.ops.clone(),
        );
        r.register(
            "kube_ipvs_syncs",
            "Syncs by kind (full, verify, incremental, drain)",
            self.syncs.clone(),
        );
        r.register(
            "kube_ipvs_rejected_objects",
            "Objects currently rejected for bad input, by reason",
            self.rejected.clone(),
        );
        r.register(
            "kube_ipvs_drain_backlog",
            "Real servers draining (weight 0, waiting for connections to end)",
            self.drain_backlog.clone(),
        );
        r.register(
            "kube_ipvs_services",
            "Services with desired state on this node",
            self.services.clone(),
        );
        let build_info = Family::<BuildInfoLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildInfoLabels {
                git_version: crate::build_info::VERSION,
                git_commit: crate::build_info::GIT_COMMIT,
                build_date: crate::build_info::BUILD_DATE,
                compiler: crate::build_info::RUSTC,
                platform: crate::build_info::PLATFORM,
            })
            .set(1);
        r.register(
            "kube_ipvs_build_info",
            "A metric with a constant '1' value labeled by version, commit, build date, compiler and platform",
            build_info,
        );
        r.register(
            "kube_ipvs_sync_ops",
            "Ops of the last sync that applied any: planned, and applied so far (moves while a long \
             plan, such as the initial programming of a large node, is applied)",
            self.sync_ops.clone(),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        // Every family exists from the start so dashboards see zeros, not gaps.
        for &f in &self.families {
            let fl = FamilyLabels { ip_family: f };
            let _ = self.sync_duration.get_or_create(&fl);
            let _ = self.network_programming.get_or_create(&fl);
            let _ = self.restore_failures.get_or_create(&fl);
            for traffic_policy in ["internal", "external"] {
                let _ = self.no_local_endpoints.get_or_create(&PolicyLabels {
                    ip_family: f,
                    traffic_policy,
                });
            }
        }
        self
    }

    /// Adds `kube_ipvs_watch_staleness_seconds{kind}`, read from `freshness` at each scrape.
    pub fn watch_freshness(&mut self, freshness: Freshness) {
        self.registry
            .register_collector(Box::new(StalenessCollector(freshness)));
    }

    fn each_family(&self) -> impl Iterator<Item = FamilyLabels> + '_ {
        self.families
            .iter()
            .map(|&ip_family| FamilyLabels { ip_family })
    }

    /// A change of some kind was received at `at`; `pending` is the count after it.
    pub fn queued(&self, kind: crate::agent::ChangeKind, at: SystemTime, pending: Counts) {
        match kind {
            crate::agent::ChangeKind::Service => self.service_changes_total.inc(),
            crate::agent::ChangeKind::Endpoints => self.endpoint_changes_total.inc(),
        };
        self.set_pending(pending);
        for fl in self.each_family() {
            self.last_queued.get_or_create(&fl).set(secs(at));
        }
    }

    fn set_pending(&self, pending: Counts) {
        self.service_changes_pending
            .set(gauge_value(pending.services));
        self.endpoint_changes_pending
            .set(gauge_value(pending.endpoints));
    }

    /// A sync has applied `done` of its `planned` ops.
    pub fn progress(&self, done: usize, planned: usize) {
        for (state, n) in [("planned", planned), ("applied", done)] {
            self.sync_ops
                .get_or_create(&ProgressLabels { state })
                .set(gauge_value(u64::try_from(n).unwrap_or(u64::MAX)));
        }
    }

    /// A sync finished; `pending` is what is still waiting after it.
    pub fn synced(&self, r: &SyncReport, pending: Counts) {
        self.syncs
            .get_or_create(&SyncLabels {
                kind: r.kind.as_str(),
            })
            .inc();
        for (kind, n) in &r.applied {
            self.ops
                .get_or_create(&OpLabels {
                    kind,
                    result: "applied",
                })
                .inc_by(*n);
        }
        for (kind, n) in &r.failed {
            self.ops
                .get_or_create(&OpLabels {
                    kind,
                    result: "failed",
                })
                .inc_by(*n);
        }
        self.drain_backlog.set(gauge_value(
            u64::try_from(r.drain_backlog).unwrap_or(u64::MAX),
        ));
        self.set_pending(pending);
        // The drain and retire timers are no proxy-rules syncs: stock has no counterpart.
        if !r.kind.syncs_changes() {
            return;
        }
        self.services
            .set(gauge_value(u64::try_from(r.services).unwrap_or(u64::MAX)));
        let took = r.duration.as_secs_f64();
        let finished = r.started.checked_add(r.duration).unwrap_or(r.started);
        for fl in self.each_family() {
            self.sync_duration.get_or_create(&fl).observe(took);
            let by_kind = match r.kind {
                SyncKind::Full => &self.sync_full_duration,
                _ => &self.sync_partial_duration,
            };
            by_kind.get_or_create(&fl).observe(took);
            let programming = self.network_programming.get_or_create(&fl);
            for l in &r.programming_latencies {
                programming.observe(l.as_secs_f64());
            }
            if r.rules_failed {
                self.restore_failures.get_or_create(&fl).inc();
            } else {
                // Stock sets this only when the sync succeeded.
                self.last_timestamp.get_or_create(&fl).set(secs(finished));
            }
        }
    }

    /// Services with a Local traffic policy and no local endpoint: (internal, external).
    pub fn no_local_endpoints(&self, (internal, external): (u64, u64)) {
        for fl in self.each_family() {
            for (traffic_policy, n) in [("internal", internal), ("external", external)] {
                self.no_local_endpoints
                    .get_or_create(&PolicyLabels {
                        ip_family: fl.ip_family,
                        traffic_policy,
                    })
                    .set(gauge_value(n));
            }
        }
    }

    /// Objects currently rejected, counted by [`crate::model::Rejection::reason`].
    pub fn rejections(&self, by_reason: &BTreeMap<&'static str, u64>) {
        // Reasons no longer present drop to zero rather than vanish (no stale last value).
        let known = crate::telemetry::events::ALL_REASONS.iter().copied();
        for reason in known.chain(by_reason.keys().copied()) {
            let n = by_reason.get(reason).copied().unwrap_or(0);
            self.rejected
                .get_or_create(&ReasonLabels { reason })
                .set(gauge_value(n));
        }
    }

    /// `/healthz` answered `code`.
    pub fn healthz(&self, code: u16) {
        self.healthz.get_or_create(&CodeLabels { code }).inc();
    }

    /// `/livez` answered `code`.
    pub fn livez(&self, code: u16) {
        self.livez.get_or_create(&CodeLabels { code }).inc();
    }

    /// The OpenMetrics exposition (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// The classic Prometheus text exposition (format 0.0.4).
    pub fn encode_text(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics())
    }

    /// Answers `GET /metrics`, in OpenMetrics when the scraper accepts it.
    pub fn response(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let wants_openmetrics = parts
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        if wants_openmetrics {
            respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.encode_openmetrics(),
            )
        } else {
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.encode_text(),
            )
        }
    }
}

/// The staleness gauge of each watched kind, computed when scraped.
#[derive(Debug)]
struct StalenessCollector(Freshness);

impl Collector for StalenessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let ages = self.0.ages();
        let mut family = encoder.encode_descriptor(
            "kube_ipvs_watch_staleness_seconds",
            "Seconds since the watch of this kind last showed life (list page, event or bookmark; \
             the API server bookmarks every minute): the age of the state the agent serves",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, age) in ages {
            let g = ConstGauge::new(age.as_secs_f64());
            g.encode(family.encode_family(&SyncLabels { kind: kind.name() })?)?;
        }
        Ok(())
    }
}

/// Converts prometheus-client's OpenMetrics text to the classic Prometheus text format: counter
/// families are named with their `_total` suffix in `# HELP`/`# TYPE`, `# UNIT` and `# EOF` are
/// dropped, and `le` bounds are written as Go does (`le="1"`, not `le="1.0"`).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let counter = rest
                .rsplit_once(' ')
                .filter(|(name, t)| *t == "counter" && !name.ends_with("_total"));
            match counter {
                Some((name, _)) => {
                    if let Some(h) = help.take() {
                        let text = h
                            .strip_prefix("# HELP ")
                            .and_then(|h| h.strip_prefix(name))
                            .unwrap_or("");
                        out.push_str(&format!("# HELP {name}_total{text}\n"));
                    }
                    out.push_str(&format!("# TYPE {name}_total counter\n"));
                }
                None => {
                    if let Some(h) = help.take() {
                        out.push_str(h);
                        out.push('\n');
                    }
                    out.push_str(line);
                    out.push('\n');
                }
            }
            continue;
        }
        out.push_str(&go_le(line));
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// `le="1.0"` -> `le="1"` (Go's shortest float formatting); other lines unchanged.
fn go_le(line: &str) -> std::borrow::Cow<'_, str> {
    const KEY: &str = "le=\"";
    let Some(start) = line.find(KEY).map(|i| i + KEY.len()) else {
        return line.into();
    };
    let Some(len) = line.get(start..).and_then(|rest| rest.find('"')) else {
        return line.into();
    };
    let value = line.get(start..start + len).unwrap_or("");
    match value.strip_suffix(".0") {
        Some(short) => format!(
            "{}{}{}",
            line.get(..start).unwrap_or(""),
            short,
            line.get(start + len..).unwrap_or("")
        )
        .into(),
        None => line.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::ChangeKind;

    /// Parses the classic text format into `(name{labels}, value)`; labels sorted by name.
    pub fn parse(text: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut ls: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    ls.sort_unstable();
                    format!("{name}{{{}}}", ls.join(","))
                }
                None => series.to_string(),
            };
            out.insert(key, value.parse::<f64>().unwrap());
        }
        out
    }

    /// `# TYPE` of each family.
    pub fn types(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    fn report(kind: SyncKind, started: SystemTime) -> SyncReport {
        SyncReport {
            kind,
            started,
            duration: Duration::from_millis(3),
            applied: BTreeMap::from([("add_dest", 5), ("add_vs", 2)]),
            failed: BTreeMap::from([("add_dest", 1)]),
            refused: Vec::new(),
            rules_written: true,
            rules_failed: false,
            service_changes: 1,
            endpoint_changes: 2,
            programming_latencies: vec![Duration::from_millis(100), Duration::from_millis(1500)],
            services: 7,
            drain_backlog: 4,
        }
    }

    #[test]
    fn build_info_is_a_constant_gauge_labelled_like_stocks() {
        let text = Metrics::new(&[types::Family::V4]).encode_text();
        assert_eq!(types(&text)["kube_ipvs_build_info"], "gauge");
        let v = parse(&text);
        let (key, value) = v
            .iter()
            .find(|(k, _)| k.starts_with("kube_ipvs_build_info{"))
            .expect("kube_ipvs_build_info");
        assert_eq!(*value, 1.0);
        for label in [
            format!("git_commit=\"{}\"", crate::build_info::GIT_COMMIT),
            format!("git_version=\"{}\"", crate::build_info::VERSION),
            format!("build_date=\"{}\"", crate::build_info::BUILD_DATE),
        ] {
            assert!(key.contains(&label), "{key}");
        }
    }

    #[test]
    fn stock_names_types_and_values_after_a_sync() {
        let m = Metrics::new(&[types::Family::V4]);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let pending = Counts {
            services: 1,
            endpoints: 2,
        };
        m.queued(ChangeKind::Service, t0, pending);
        m.queued(ChangeKind::Endpoints, t0, pending);
        m.queued(ChangeKind::Endpoints, t0, pending);
        m.synced(&report(SyncKind::Incremental, t0), Counts::default());
        m.progress(16_384, 400_000);
        m.rejections(&BTreeMap::from([("InvalidIP", 3)]));
        m.no_local_endpoints((1, 2));
        m.healthz(200);

        let text = m.encode_text();
        let v = parse(&text);
        let get = |k: &str| *v.get(k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
        let fam = "ip_family=\"IPv4\"";
        let d = "kubeproxy_sync_proxy_rules_duration_seconds";
        assert_eq!(get(&format!("{d}_count{{{fam}}}")), 1.0);
        assert!((get(&format!("{d}_sum{{{fam}}}")) - 0.003).abs() < 1e-9);
        assert_eq!(get(&format!("{d}_bucket{{{fam},le=\"0.002\"}}")), 0.0);
        assert_eq!(get(&format!("{d}_bucket{{{fam},le=\"0.004\"}}")), 1.0);
        assert_eq!(get(&format!("{d}_bucket{{{fam},le=\"16.384\"}}")), 1.0);
        assert_eq!(
            get(&format!(
                "kubeproxy_sync_partial_proxy_rules_duration_seconds_count{{{fam}}}"
            )),
            1.0
        );
        let np = "kubeproxy_network_programming_duration_seconds";
        assert_eq!(get(&format!("{np}_count{{{fam}}}")), 2.0);
        assert_eq!(get(&format!("{np}_bucket{{{fam},le=\"0\"}}")), 0.0);
        assert_eq!(get(&format!("{np}_bucket{{{fam},le=\"0.25\"}}")), 1.0);
        assert_eq!(get(&format!("{np}_bucket{{{fam},le=\"1\"}}")), 1.0);
        assert_eq!(get(&format!("{np}_bucket{{{fam},le=\"2\"}}")), 2.0);
        assert_eq!(
            get(&format!(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds{{{fam}}}"
            )),
            1_700_000_000.003
        );
        assert_eq!(
            get(&format!(
                "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{{{fam}}}"
            )),
            1_700_000_000.0
        );
        assert_eq!(get("kubeproxy_sync_proxy_rules_service_changes_total"), 1.0);
        assert_eq!(
            get("kubeproxy_sync_proxy_rules_endpoint_changes_total"),
            2.0
        );
        assert_eq!(
            get("kubeproxy_sync_proxy_rules_service_changes_pending"),
            0.0
        );
        assert_eq!(
            get("kubeproxy_sync_proxy_rules_endpoint_changes_pending"),
            0.0
        );
        let nle = "kubeproxy_sync_proxy_rules_no_local_endpoints_total";
        assert_eq!(
            get(&format!("{nle}{{{fam},traffic_policy=\"internal\"}}")),
            1.0
        );
        assert_eq!(
            get(&format!("{nle}{{{fam},traffic_policy=\"external\"}}")),
            2.0
        );
        assert_eq!(
            get(&format!(
                "kubeproxy_sync_proxy_rules_iptables_restore_failures_total{{{fam}}}"
            )),
            0.0
        );
        assert_eq!(get("kubeproxy_proxy_healthz_total{code=\"200\"}"), 1.0);
        assert_eq!(
            get("kube_ipvs_ops_total{kind=\"add_dest\",result=\"applied\"}"),
            5.0
        );
        assert_eq!(
            get("kube_ipvs_ops_total{kind=\"add_dest\",result=\"failed\"}"),
            1.0
        );
        assert_eq!(
            get("kube_ipvs_ops_total{kind=\"add_vs\",result=\"applied\"}"),
            2.0
        );
        assert_eq!(get("kube_ipvs_syncs_total{kind=\"incremental\"}"), 1.0);
        assert_eq!(get("kube_ipvs_rejected_objects{reason=\"InvalidIP\"}"), 3.0);
        assert_eq!(
            get("kube_ipvs_rejected_objects{reason=\"MissingName\"}"),
            0.0
        );
        assert_eq!(get("kube_ipvs_drain_backlog"), 4.0);
        assert_eq!(get("kube_ipvs_services"), 7.0);
        assert_eq!(get("kube_ipvs_sync_ops{state=\"planned\"}"), 400_000.0);
        assert_eq!(get("kube_ipvs_sync_ops{state=\"applied\"}"), 16_384.0);

        // Stock types, and stock names in the classic format (counters with `_total`).
        let ty = types(&text);
        for (name, want) in [
            ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
            (
                "kubeproxy_network_programming_duration_seconds",
                "histogram",
            ),
            ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
            (
                "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                "gauge",
            ),
            (
                "kubeproxy_sync_proxy_rules_service_changes_pending",
                "gauge",
            ),
            (
                "kubeproxy_sync_proxy_rules_service_changes_total",
                "counter",
            ),
            (
                "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                "gauge",
            ),
            (
                "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                "counter",
            ),
            (
                "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                "gauge",
            ),
            (
                "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
                "counter",
            ),
            ("kube_ipvs_ops_total", "counter"),
            ("kube_ipvs_rejected_objects", "gauge"),
            ("kube_ipvs_drain_backlog", "gauge"),
            ("kube_ipvs_sync_ops", "gauge"),
        ] {
            assert_eq!(ty.get(name).map(String::as_str), Some(want), "{name}");
        }
        assert!(!text.contains("# EOF"));
        // Drop-in: the stock bucket sets.
        let sync_buckets = v
            .keys()
            .filter(|k| k.starts_with(&format!("{d}_bucket{{")))
            .count();
        assert_eq!(sync_buckets, 16, "15 stock buckets + +Inf");
        let np_buckets = v
            .keys()
            .filter(|k| k.starts_with(&format!("{np}_bucket{{")))
            .count();
        assert_eq!(np_buckets, 82, "81 stock buckets + +Inf");
    }

    #[test]
    fn failed_rules_and_drain_syncs() {
        let m = Metrics::new(&[types::Family::V4, types::Family::V6]);
        let t0 = UNIX_EPOCH + Duration::from_secs(100);
        let mut r = report(SyncKind::Full, t0);
        r.rules_failed = true;
        m.synced(&r, Counts::default());
        m.synced(&report(SyncKind::Drain, t0), Counts::default());
        let v = parse(&m.encode_text());
        for fam in ["IPv4", "IPv6"] {
            let l = format!("{{ip_family=\"{fam}\"}}");
            assert_eq!(
                v[&format!("kubeproxy_sync_proxy_rules_iptables_restore_failures_total{l}")],
                1.0
            );
            // A failed sync is not a successful one; the drain is not a rules sync.
            assert!(!v.contains_key(&format!(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds{l}"
            )));
            assert_eq!(
                v[&format!("kubeproxy_sync_proxy_rules_duration_seconds_count{l}")],
                1.0
            );
            assert_eq!(
                v[&format!("kubeproxy_sync_full_proxy_rules_duration_seconds_count{l}")],
                1.0
            );
        }
        assert_eq!(v["kube_ipvs_syncs_total{kind=\"drain\"}"], 1.0);
        assert_eq!(v["kube_ipvs_syncs_total{kind=\"full\"}"], 1.0);
        assert_eq!(
            v["kube_ipvs_ops_total{kind=\"add_dest\",result=\"applied\"}"],
            10.0
        );
    }

    #[test]
    fn openmetrics_to_classic_text() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total 3\n\
                  # HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n\
                  # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{x=\"y\",le=\"0.25\"} 1\n\
                  h_bucket{le=\"+Inf\"} 2\nh_sum 3.0\nh_count 2\n# EOF\n";
        let want = "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total 3\n\
                    # HELP g A gauge.\n# TYPE g gauge\ng 1.5\n\
                    # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{x=\"y\",le=\"0.25\"} 1\n\
                    h_bucket{le=\"+Inf\"} 2\nh_sum 3.0\nh_count 2\n";
        assert_eq!(to_prometheus_text(om), want);
    }

    #[test]
    fn network_programming_buckets_match_stock() {
        let b = network_programming_buckets();
        assert_eq!(b.len(), 81);
        assert_eq!(b.get(..4), Some(&[0.0, 0.25, 0.5, 1.0][..]));
        assert_eq!(b.get(61..64), Some(&[59.0, 60.0, 65.0][..]));
        assert_eq!(b.last(), Some(&300.0));
    }
}
