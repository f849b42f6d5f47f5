//! The agent under bad input and kernel faults, on a fake kernel: a file source whose objects stop
//! decoding keeps their last good version; a broken file is not re-read every poll; ops the kernel
//! refuses with a real errno (ENOMEM, EPERM) are counted, retried with backoff and reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{slice, svc};
use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_ipvs::agent::{
    AgentError, ChangeKind, EventFeed, Observer, Settings, SyncKind, SyncReport, run_agent,
};
use kube_ipvs::config::{Config, SyncPeriods};
use kube_ipvs::desired::HealthCheck;
use kube_ipvs::kernel::{FakeKernel, KernelError};
use kube_ipvs::model::{ObjectRef, Rejection};
use kube_ipvs::plan::Op;
use kube_ipvs::source::{
    ClusterEvent, FileOptions, KubernetesOptions, SourceEvent, file, kubernetes, list_events,
};
use kube_ipvs::telemetry::{Telemetry, TelemetryOptions};
use kube_ipvs::types::{Family, ServiceName};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep;

const NODE: &str = "n1";

#[derive(Default)]
struct Recorder {
    reports: Mutex<Vec<SyncReport>>,
    rejections: Mutex<BTreeMap<ObjectRef, Rejection>>,
}

impl Observer for Recorder {
    fn queued(&self, _: ChangeKind, _: SystemTime) {}
    fn synced(&self, report: &SyncReport) {
        self.reports.lock().unwrap().push(report.clone());
    }
    fn cluster(&self, rejections: &BTreeMap<ObjectRef, Rejection>, _: (u64, u64)) {
        *self.rejections.lock().unwrap() = rejections.clone();
    }
    fn health_checks(&self, _: &BTreeMap<ServiceName, HealthCheck>) {}
}

impl Recorder {
    fn reports(&self) -> Vec<SyncReport> {
        self.reports.lock().unwrap().clone()
    }
    fn rejected(&self) -> Vec<String> {
        self.rejections
            .lock()
            .unwrap()
            .iter()
            .map(|(o, r)| format!("{o}: {r}"))
            .collect()
    }
}

struct Agent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AgentError>>,
    obs: Arc<Recorder>,
}

impl Agent {
    fn spawn<F: EventFeed + 'static>(kernel: &FakeKernel, feed: F, settings: Settings) -> Self {
        let obs = Arc::new(Recorder::default());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run_agent(
            kernel.clone(),
            feed,
            settings,
            obs.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self { stop, task, obs }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn settings(sync_period: Duration) -> Settings {
    let cfg = Config {
        service_cluster_ip_ranges: vec!["10.96.0.0/16".parse().unwrap()],
        sync: SyncPeriods {
            period: sync_period,
            min: Duration::ZERO,
        },
        ..Config::default()
    };
    Settings::from_config(
        &cfg,
        NODE,
        vec![Family::V4],
        vec!["192.168.0.1".parse().unwrap()],
    )
}

fn kernel() -> FakeKernel {
    let k = FakeKernel::new();
    k.handle().node_addresses = vec!["192.168.0.1".parse().unwrap()];
    k
}

/// `TCP 10.96.0.10:80 -> 10.1.0.1:8080/1` per virtual server (weight after the slash).
fn table(k: &FakeKernel) -> Vec<String> {
    k.handle()
        .state
        .virtual_servers()
        .iter()
        .map(|(key, v)| {
            let mut s = key
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            s += " ->";
            for r in &v.reals {
                s += &format!(" {}/{}", r.key, r.weight);
            }
            s
        })
        .collect()
}

/// Polls `cond` every 20 ms for up to 20 s (of the test's clock).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "kube-ipvs-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    /// Replaces `name` atomically (as an editor or `kubectl get > f.tmp && mv` does), with a
    /// size change or a new mtime so the source notices.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CLUSTER: &str = "\
apiVersion: v1
kind: Service
metadata: {namespace: default, name: web}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {namespace: default, name: db}
spec: {clusterIP: 10.96.0.20, ports: [{port: 5432, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {namespace: default, name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.1.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {namespace: default, name: db-1, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{port: 5432, protocol: TCP}]
endpoints: [{addresses: [10.1.0.5]}]
";

const WEB: &str = "TCP 10.96.0.10:80 -> 10.1.0.1:8080/1";
const DB: &str = "TCP 10.96.0.20:5432 -> 10.1.0.5:5432/1";

/// A type error (`port: "80"`, a `null` endpoint) in the file source behaves like a semantic
/// error (`clusterIP: 10.96.0.999`): the last good version stays programmed, the new one is
/// rejected with the path of the field, and nothing else moves. Before, the object vanished
/// from the re-list and its virtual server was deleted.
#[tokio::test]
async fn a_type_error_in_the_file_source_keeps_the_last_good_version() {
    let dir = TempDir::new("typeerr");
    let path = dir.write("cluster.yaml", CLUSTER);
    let k = kernel();
    let mut opts = FileOptions::new(&path, NODE);
    opts.poll = Duration::from_millis(20);
    let agent = Agent::spawn(&k, file::start(opts), settings(Duration::from_millis(500)));
    eventually("programmed", || table(&k) == [WEB, DB]).await;

    for (broken, field) in [
        (
            CLUSTER.replace(
                "ports: [{port: 80, protocol: TCP}]",
                "ports: [{port: \"80\", protocol: TCP}]",
            ),
            "Service default/web: does not decode: spec.ports[0].port: invalid type: string \"80\"",
        ),
        (
            CLUSTER.replace("endpoints: [{addresses: [10.1.0.1]}]", "endpoints: [null]"),
            "EndpointSlice default/web-1: does not decode: endpoints[0]: invalid type: null",
        ),
        (
            CLUSTER.replace("clusterIP: 10.96.0.10", "clusterIP: 10.96.0.999"),
            "Service default/web: spec.clusterIPs[0]: invalid IP address \"10.96.0.999\"",
        ),
    ] {
        // Also change db, so a sync is certain to have run with the broken web in the file.
        let broken = broken.replace("10.1.0.5", "10.1.0.6");
        dir.write("cluster.yaml", &broken);
        eventually(field, || {
            agent.obs.rejected().iter().any(|r| r.starts_with(field))
        })
        .await;
        eventually("db changed", || {
            table(&k)[1] == "TCP 10.96.0.20:5432 -> 10.1.0.6:5432/1"
        })
        .await;
        assert_eq!(table(&k)[0], WEB, "web keeps its last good version");
        dir.write("cluster.yaml", CLUSTER);
        eventually("fixed", || {
            table(&k) == [WEB, DB] && agent.obs.rejected().is_empty()
        })
        .await;
    }
    assert!(
        !agent
            .obs
            .reports()
            .iter()
            .any(|r| r.applied.contains_key("del_vs")),
        "no virtual server was ever deleted"
    );
    agent.stop().await;
}

/// An object that never decoded is not programmed, and is reported.
#[tokio::test]
async fn an_object_that_never_decoded_is_reported_and_not_programmed() {
    let dir = TempDir::new("neverok");
    let text = CLUSTER.replace(
        "ports: [{port: 80, protocol: TCP}]",
        "ports: [{port: {a: 1}}]",
    );
    let path = dir.write("cluster.yaml", &text);
    let k = kernel();
    let mut opts = FileOptions::new(&path, NODE);
    opts.poll = Duration::from_millis(20);
    let agent = Agent::spawn(&k, file::start(opts), settings(Duration::from_millis(500)));
    eventually("db programmed", || table(&k) == [DB]).await;
    eventually("web reported", || {
        agent.obs.rejected().iter().any(|r| {
            r.starts_with(
                "Service default/web: does not decode: spec.ports[0].port: invalid type: map",
            )
        })
    })
    .await;
    agent.stop().await;
}

/// A file that does not parse keeps the source where it was (not ready, or the last good
/// state) and is read again when it changes, or after a doubling backoff: not every poll.
#[tokio::test(start_paused = true)]
async fn a_broken_file_is_read_again_on_change_or_after_a_backoff() {
    let dir = TempDir::new("backoff");
    let path = dir.write("cluster.yaml", "kind: Service\nmetadata: [\n");
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let mut opts = FileOptions::new(&path, NODE);
    opts.poll = Duration::from_secs(1);
    let sources = file::start(opts);
    sleep(Duration::from_secs(62)).await;
    let attempts = logs.count("file source invalid");
    // Polled 62 times; read at 0, 1, 3, 7, 15, 31 s (and 61 s, when the 60 s cap is reached).
    assert!((5..=8).contains(&attempts), "{attempts} attempts in 62 s");
    assert!(!sources.is_ready());
    // A change is read at the next poll, whatever the backoff.
    dir.write("cluster.yaml", CLUSTER);
    sleep(Duration::from_millis(1500)).await;
    assert!(sources.is_ready(), "{}", logs.text());
}

/// Log lines of the test's thread (the file source runs on it: current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let me = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || me.clone())
            .with_ansi(false)
            .finish()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn count(&self, what: &str) -> usize {
        self.text().lines().filter(|l| l.contains(what)).count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------- kernel errnos ----------

async fn initial(tx: &mpsc::Sender<ClusterEvent>, svcs: Vec<Service>, slices: Vec<EndpointSlice>) {
    let evs = list_events(ClusterEvent::Service, svcs)
        .chain(list_events(ClusterEvent::Slice, slices))
        .chain(list_events(ClusterEvent::Node, Vec::new()))
        .chain(list_events(ClusterEvent::ServiceCidr, Vec::new()))
        .chain(std::iter::once(ClusterEvent::Synced));
    for ev in evs {
        tx.send(ev).await.unwrap();
    }
}

/// What the IPVS client returns for an errno on adding a destination.
fn ipvs_errno(op: &Op, errno: nix::errno::Errno) -> KernelError {
    let source = match errno {
        nix::errno::Errno::EPERM => ipvs_netlink::Error::PermissionDenied {
            op: "new destination",
        },
        errno => ipvs_netlink::Error::Errno {
            op: "new destination",
            target: op.to_string(),
            errno: errno.into(),
        },
    };
    KernelError::Ipvs {
        op: op.to_string(),
        source,
    }
}

/// ENOMEM on one Service's real servers (the kernel could not allocate them), then EPERM on
/// everything (CAP_NET_ADMIN lost): each refused op is counted by kind in the sync report,
/// retried with a doubling backoff capped at syncPeriod, and the other Service is untouched.
#[tokio::test(start_paused = true)]
async fn enomem_and_eperm_are_counted_retried_with_backoff_and_reported() {
    let (tx, rx) = mpsc::channel(64);
    let k = kernel();
    let broken = "10.96.0.20".parse::<std::net::IpAddr>().unwrap();
    k.handle().refuse = Some(Arc::new(move |op: &Op| match op {
        Op::AddRs { vs, .. } if vs.addr() == Some(broken) => {
            Some(ipvs_errno(op, nix::errno::Errno::ENOMEM))
        }
        _ => None,
    }));
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(30)));
    initial(
        &tx,
        vec![svc("web", "10.96.0.10"), svc("db", "10.96.0.20")],
        vec![
            slice("web-1", "web", &["10.1.0.1"]),
            slice("db-1", "db", &["10.1.0.5"]),
        ],
    )
    .await;
    eventually("start-up sync", || !agent.obs.reports().is_empty()).await;
    assert_eq!(
        table(&k),
        [
            "TCP 10.96.0.10:80 -> 10.1.0.1:8080/1",
            "TCP 10.96.0.20:80 ->"
        ],
        "web complete, db's virtual server without its refused real server"
    );
    assert_eq!(agent.obs.reports()[0].failed.get("add_rs"), Some(&1));

    // Retried after 1, 2, 4, 8 s: 4 more attempts in 15 s, each counted.
    sleep(Duration::from_millis(15_500)).await;
    let retries: Vec<u64> = agent.obs.reports()[1..]
        .iter()
        .map(|r| r.failed.get("add_rs").copied().unwrap_or(0))
        .collect();
    assert_eq!(retries, [1, 1, 1, 1], "backoff 1, 2, 4, 8 s");

    // Memory comes back: the next retry programs it without any cluster event.
    k.handle().refuse = None;
    eventually("db programmed", || {
        table(&k)[1] == "TCP 10.96.0.20:80 -> 10.1.0.5:8080/1"
    })
    .await;

    // CAP_NET_ADMIN lost: every op refused with EPERM. A change is retried with backoff capped
    // at syncPeriod (30 s), never in a tight loop; the agent keeps running.
    k.handle().refuse = Some(Arc::new(|op: &Op| {
        Some(ipvs_errno(op, nix::errno::Errno::EPERM))
    }));
    let before = agent.obs.reports().len();
    tx.send(ClusterEvent::Slice(SourceEvent::Applied(slice(
        "web-1",
        "web",
        &["10.1.0.1", "10.1.0.2"],
    ))))
    .await
    .unwrap();
    sleep(Duration::from_secs(120)).await;
    let during: Vec<SyncReport> = agent.obs.reports()[before..].to_vec();
    let failed_syncs = during.iter().filter(|r| !r.failed.is_empty()).count();
    // A tight loop would make thousands; backoff (1, 2, 4, .. s, capped at 30 s) plus the full
    // repairs every 30 s make about a dozen.
    assert!(
        (5..=16).contains(&failed_syncs),
        "{failed_syncs} failed attempts in 120 s: {:?}",
        during
            .iter()
            .map(|r| (r.kind, r.failed.clone()))
            .collect::<Vec<_>>()
    );
    assert!(!agent.task.is_finished());
    k.handle().refuse = None;
    // The next attempt is at most a backoff (capped at syncPeriod) away.
    sleep(Duration::from_secs(31)).await;
    eventually("recovered", || {
        table(&k)[0] == "TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1"
    })
    .await;
    assert!(
        agent
            .obs
            .reports()
            .last()
            .is_some_and(|r| r.failed.is_empty() && r.kind != SyncKind::Drain)
    );
    agent.stop().await;
}

// ---------- a slow API server, a stalled watch ----------

/// The value of one series in the Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Every response of the API server takes a second, then the Services watch stalls (open,
/// silent, never ended: a proxy that stopped forwarding). The agent programs what the slow lists
/// gave it; a slow but live API server, bookmarking every second, is never reported stale. While
/// the Services watch is silent the agent keeps its table and its syncs, programs the
/// EndpointSlice changes that still arrive, and reports Services stale (a warning and
/// `kube_ipvs_watch_staleness_seconds`) once silent for `stale_after`, and no other kind.
/// kube-runtime gives up on the silent watch after `timeoutSeconds` + 5 s, reopens it from its
/// resourceVersion, the Service it had missed is programmed, and Services is fresh again.
#[tokio::test]
async fn a_slow_api_server_and_a_stalled_watch_cost_freshness_not_service() {
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let api = FakeApiServer::start_on_own_thread().unwrap(); // bookmarks every second
    api.apply(&svc("web", "10.96.0.10")).unwrap();
    api.apply(&slice("web-1", "web", &["10.1.0.1"])).unwrap();
    api.set_delay(Duration::from_secs(1));
    let k = kernel();
    let mut opts = KubernetesOptions::new(NODE);
    opts.watch_timeout = Some(5);
    opts.stale_after = Duration::from_secs(3);
    let config = kube::Config::new(api.url().parse().unwrap());
    let client = kubernetes::client_from_config(config, &opts.freshness).unwrap();
    let feed = kubernetes::start(client, &opts);
    let telemetry = Telemetry::new(
        &Config::default(),
        TelemetryOptions {
            freshness: feed.freshness(),
            ..TelemetryOptions::default()
        },
    );
    let staleness = |kind: &str| {
        metric(
            &telemetry.metrics_text(),
            &format!("kube_ipvs_watch_staleness_seconds{{kind=\"{kind}\"}}"),
        )
        .unwrap_or_else(|| panic!("no staleness of {kind}: {}", telemetry.metrics_text()))
    };
    let stale_lines = || logs.count("watch stale");
    let agent = Agent::spawn(&k, feed, settings(Duration::from_secs(2)));
    eventually("programmed despite a second per response", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1"]
    })
    .await;
    // Slow, and no change for longer than `stale_after`: the bookmarks keep every kind fresh.
    sleep(Duration::from_secs(4)).await;
    api.set_delay(Duration::ZERO);
    for kind in ["services", "endpointslices", "node", "servicecidrs"] {
        assert!(
            staleness(kind) < 3.0,
            "{kind}: {}",
            telemetry.metrics_text()
        );
    }
    assert_eq!(stale_lines(), 0, "{}", logs.text());

    // Stall the Services watch while it is open (each lasts `timeoutSeconds`, 5 s).
    eventually("four watches open", || api.open_watches() >= 4).await;
    assert_eq!(api.stall_watches_of(fake_apiserver::Kind::Service), 1);
    api.apply(&svc("db", "10.96.0.11")).unwrap();
    api.apply(&slice("web-1", "web", &["10.1.0.1", "10.1.0.2"]))
        .unwrap();
    // While Services is silent: the slice change is programmed, the table stays, syncs go on.
    let syncs = agent.obs.reports().len();
    eventually("the slice change programmed", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1"]
    })
    .await;
    // Silent for `stale_after`: Services, and only Services, is reported stale, once.
    eventually("Services reported stale", || stale_lines() == 1).await;
    assert!(logs.text().contains("kind=\"services\""), "{}", logs.text());
    assert!(staleness("services") >= 3.0, "{}", telemetry.metrics_text());
    for kind in ["endpointslices", "node", "servicecidrs"] {
        assert!(
            staleness(kind) < 3.0,
            "{kind}: {}",
            telemetry.metrics_text()
        );
    }
    assert!(agent.obs.reports().len() > syncs, "syncs continue");
    assert_eq!(
        table(&k),
        ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1"],
        "db not seen yet"
    );
    // The client gives up on the silent watch (5 s + 5 s) and catches up.
    eventually("the missed Service programmed", || table(&k).len() == 2).await;
    eventually("Services fresh again", || {
        logs.count("watch fresh again") == 1
    })
    .await;
    assert!(staleness("services") < 3.0, "{}", telemetry.metrics_text());
    assert_eq!(stale_lines(), 1, "{}", logs.text());
    agent.stop().await;
}
