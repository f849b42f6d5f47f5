//! The sync loop of `kube-ipvs run` end to end on a fake kernel: against the fake API server over
//! HTTP (real time), against the file source, and against scripted events under a paused clock
//! (timing: coalescing, minSyncPeriod, retries, drains).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{slice, svc};
use fake_apiserver::{FakeApiServer, Kind};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_ipvs::agent::{
    AgentError, ChangeKind, EventFeed, Observer, Settings, SyncKind, SyncReport, run_agent,
};
use kube_ipvs::config::{Config, SyncPeriods};
use kube_ipvs::desired::HealthCheck;
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::kernel::FakeKernel;
use kube_ipvs::model::{ObjectRef, Rejection};
use kube_ipvs::plan::{ObservedState, Op};
use kube_ipvs::source::{
    ClusterEvent, FileOptions, KubernetesOptions, SourceEvent, Sources, file, kubernetes,
    list_events,
};
use kube_ipvs::types::{Family, ServiceName};
use kube_ipvs::{Engine, PlannerConfig};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

const NODE: &str = "n1";

// ---------- cluster objects ----------

fn node() -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}]},
    }))
    .unwrap()
}

// ---------- agent harness ----------

#[derive(Default)]
struct Recorder {
    reports: Mutex<Vec<(Instant, SyncReport)>>,
    queued: Mutex<Vec<ChangeKind>>,
    health_updates: Mutex<usize>,
    /// Each cluster-wide report: when, and how many objects were rejected.
    clusters: Mutex<Vec<(Instant, usize)>>,
}

impl Observer for Recorder {
    fn queued(&self, kind: ChangeKind, _: SystemTime) {
        self.queued.lock().unwrap().push(kind);
    }
    fn synced(&self, report: &SyncReport) {
        self.reports
            .lock()
            .unwrap()
            .push((Instant::now(), report.clone()));
    }
    fn cluster(&self, rejections: &BTreeMap<ObjectRef, Rejection>, _: (u64, u64)) {
        self.clusters
            .lock()
            .unwrap()
            .push((Instant::now(), rejections.len()));
    }
    fn health_checks(&self, _: &BTreeMap<ServiceName, HealthCheck>) {
        *self.health_updates.lock().unwrap() += 1;
    }
}

impl Recorder {
    fn reports(&self) -> Vec<SyncReport> {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }
    fn count(&self) -> usize {
        self.reports.lock().unwrap().len()
    }
    /// Syncs of one kind so far.
    fn count_of(&self, kind: SyncKind) -> usize {
        let reports = self.reports.lock().unwrap();
        reports.iter().filter(|(_, r)| r.kind == kind).count()
    }
    fn times(&self) -> Vec<Instant> {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
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

fn settings(sync_period: Duration, min_sync_period: Duration) -> Settings {
    let cfg = Config {
        service_cluster_ip_ranges: vec!["10.96.0.0/16".parse().unwrap()],
        sync: SyncPeriods {
            period: sync_period,
            min: min_sync_period,
        },
        ..Config::default()
    };
    let mut s = Settings::from_config(
        &cfg,
        NODE,
        vec![Family::V4],
        vec!["192.168.0.1".parse().unwrap()],
    );
    s.timing.drain_interval = Duration::from_secs(1);
    s
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

fn applied(k: &FakeKernel) -> Vec<Op> {
    k.handle().applied.clone()
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

fn destructive(op: &Op) -> bool {
    matches!(
        op,
        Op::DelVs { .. } | Op::DelRs { .. } | Op::UnbindAddr { .. } | Op::DelRoute { .. }
    ) || matches!(op, Op::UpdateRs { rs, .. } if rs.weight == 0)
}

// ---------- against the fake API server (real time, HTTP) ----------

async fn cluster() -> FakeApiServer {
    let fake = FakeApiServer::start().await.unwrap();
    fake.apply(&node()).unwrap();
    fake.apply(&svc("web", "10.96.0.10")).unwrap();
    fake.apply(&slice("web-1", "web", &["10.1.0.1"])).unwrap();
    fake.apply(&svc("db", "10.96.0.20")).unwrap();
    fake.apply(&slice("db-1", "db", &["10.1.0.5"])).unwrap();
    fake
}

fn sources(fake: &FakeApiServer) -> Sources {
    kubernetes::start(fake.kube_client().unwrap(), &KubernetesOptions::new(NODE))
}

const WEB: &str = "TCP 10.96.0.10:80 -> 10.1.0.1:8080/1";
const DB: &str = "TCP 10.96.0.20:80 -> 10.1.0.5:8080/1";

#[tokio::test]
async fn services_and_slices_in_the_api_server_become_virtual_and_real_servers() {
    let fake = cluster().await;
    let k = kernel();
    let agent = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_secs(60), Duration::ZERO),
    );
    eventually("web and db programmed", || table(&k) == [WEB, DB]).await;
    {
        let h = k.handle();
        assert!(h.prepared);
        assert_eq!(h.observes, 1, "start-up reads the kernel once");
        assert_eq!(h.rule_writes, 1);
        assert!(h.state.routes().contains(&"10.96.0.0/16".parse().unwrap()));
    }
    let first = agent.obs.reports()[0].clone();
    assert_eq!(first.kind, SyncKind::Full);
    assert_eq!(first.applied["add_vs"], 2);
    assert_eq!(first.applied["add_rs"], 2);
    assert!(first.failed.is_empty());
    assert_eq!(first.services, 2);

    // A scale-up and a new Service: incremental, only what changed.
    fake.apply(&slice("web-1", "web", &["10.1.0.1", "10.1.0.2"]))
        .unwrap();
    fake.apply(&svc("api", "10.96.0.30")).unwrap();
    eventually("scale-up and new service", || {
        table(&k)
            == [
                "TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1",
                DB,
                "TCP 10.96.0.30:80 ->",
            ]
    })
    .await;
    let later: Vec<SyncReport> = agent.obs.reports().into_iter().skip(1).collect();
    assert!(later.iter().all(|r| r.kind == SyncKind::Incremental));
    assert_eq!(later.iter().map(|r| r.endpoint_changes).sum::<u64>(), 1);
    assert_eq!(later.iter().map(|r| r.service_changes).sum::<u64>(), 1);
    assert_eq!(
        later
            .iter()
            .map(|r| r.programming_latencies.len())
            .sum::<usize>(),
        2
    );
    assert_eq!(
        k.handle().observes,
        1,
        "incremental syncs do not read the whole kernel"
    );
    assert!(!applied(&k).iter().any(destructive));
    agent.stop().await;
    assert_eq!(table(&k).len(), 3, "shutdown leaves the kernel programmed");
}

#[tokio::test]
async fn nothing_is_programmed_before_the_initial_lists_and_a_failed_list_wipes_nothing() {
    let fake = cluster().await;
    let k = kernel();
    // A previous run programmed web, db and old.
    fake.apply(&svc("old", "10.96.0.99")).unwrap();
    let first = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_secs(60), Duration::ZERO),
    );
    eventually("three services", || table(&k).len() == 3).await;
    first.stop().await;
    let before = table(&k);
    let ops_before = applied(&k).len();

    // The API server now fails every list; "old" was deleted meanwhile.
    assert!(fake.delete(Kind::Service, Some("default"), "old"));
    fake.refuse_lists(true);
    k.handle().prepared = false;
    let agent = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_secs(60), Duration::ZERO),
    );
    sleep(Duration::from_millis(1500)).await;
    {
        let h = k.handle();
        assert!(!h.prepared, "kernel touched before the initial lists");
        assert_eq!(h.observes, 1, "no read before the initial lists");
        assert_eq!(h.applied.len(), ops_before);
    }
    assert_eq!(table(&k), before);
    assert_eq!(agent.obs.count(), 0);

    // Lists work again: the agent syncs and removes only what is gone.
    fake.refuse_lists(false);
    eventually("old removed", || table(&k) == [WEB, DB]).await;
    let new_ops: Vec<String> = applied(&k)[ops_before..]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        new_ops.iter().all(|o| o.contains("10.96.0.99")),
        "{new_ops:?}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn a_restart_against_an_unchanged_cluster_issues_no_op() {
    let fake = cluster().await;
    let k = kernel();
    let first = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_secs(60), Duration::ZERO),
    );
    eventually("programmed", || table(&k) == [WEB, DB]).await;
    first.stop().await;
    let (ops, writes) = {
        let h = k.handle();
        (h.applied.len(), h.rule_writes)
    };

    let second = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_secs(60), Duration::ZERO),
    );
    eventually("second agent synced", || second.obs.count() >= 1).await;
    let r = second.obs.reports()[0].clone();
    assert_eq!(r.kind, SyncKind::Full);
    assert!(r.applied.is_empty() && r.failed.is_empty(), "{r:?}");
    assert!(!r.rules_written);
    {
        let h = k.handle();
        assert_eq!(h.applied.len(), ops, "adopting the kernel issued ops");
        assert_eq!(h.rule_writes, writes);
    }
    second.stop().await;
}

#[tokio::test]
async fn an_api_outage_keeps_the_rules() {
    let fake = cluster().await;
    let k = kernel();
    let agent = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_millis(300), Duration::ZERO),
    );
    eventually("programmed", || table(&k) == [WEB, DB]).await;

    // Dropped watches and failing requests: the watchers recover and changes still arrive.
    fake.disconnect_watches();
    fake.fail_next(3);
    fake.apply(&slice("db-1", "db", &["10.1.0.6"])).unwrap();
    eventually("db endpoint replaced after the disconnect", || {
        table(&k).get(1).map(String::as_str) == Some("TCP 10.96.0.20:80 -> 10.1.0.6:8080/1")
    })
    .await;
    let programmed = table(&k);

    // The API server goes away: full repair syncs keep running and change nothing.
    let ops = applied(&k).len();
    let syncs = agent.obs.count();
    drop(fake);
    eventually("three full syncs during the outage", || {
        agent
            .obs
            .reports()
            .iter()
            .skip(syncs)
            .filter(|r| r.kind == SyncKind::Full)
            .count()
            >= 3
    })
    .await;
    assert_eq!(table(&k), programmed);
    assert_eq!(applied(&k).len(), ops);
    assert!(!agent.task.is_finished(), "the agent keeps running");
    agent.stop().await;
}

#[tokio::test]
async fn a_410_gone_relists_without_a_flush() {
    let fake = cluster().await;
    let k = kernel();
    let agent = Agent::spawn(
        &k,
        sources(&fake),
        settings(Duration::from_secs(60), Duration::ZERO),
    );
    eventually("programmed", || table(&k) == [WEB, DB]).await;
    eventually("watches open", || fake.open_watches() >= 3).await;
    let ops = applied(&k).len();
    let lists = |fake: &FakeApiServer| {
        fake.request_log()
            .iter()
            .filter(|r| r.is_list_of("services") && r.status == 200)
            .count()
    };
    assert_eq!(lists(&fake), 1);

    // History compacted: every watch gets 410 and re-lists. Meanwhile web scaled up.
    fake.compact();
    fake.apply(&slice("web-1", "web", &["10.1.0.1", "10.1.0.2"]))
        .unwrap();
    eventually("services re-listed", || lists(&fake) >= 2).await;
    eventually("change after the re-list programmed", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1", DB]
    })
    .await;
    fake.apply(&svc("late", "10.96.0.40")).unwrap();
    eventually("watch works after the re-list", || table(&k).len() == 3).await;
    let new_ops = &applied(&k)[ops..];
    assert!(
        !new_ops.iter().any(destructive),
        "re-list removed something: {new_ops:?}"
    );
    assert_eq!(
        new_ops.len(),
        3,
        "AddRs 10.1.0.2, AddVs late, its KUBE-CLUSTER-IP member: {new_ops:?}"
    );
    agent.stop().await;
}

// ---------- the file source ----------

#[tokio::test]
async fn the_file_source_programs_the_table_that_plan_prints() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cluster.yaml");
    let node_ips: Vec<std::net::IpAddr> = vec![
        "192.168.1.10".parse().unwrap(),
        "fd00:1::10".parse().unwrap(),
    ];
    let k = FakeKernel::new();
    k.handle().node_addresses = node_ips.clone();
    let mut s = Settings::from_config(
        &Config::default(),
        "node-a",
        Family::ALL.to_vec(),
        node_ips.clone(),
    );
    s.timing.sync_period = Duration::from_secs(60);
    let mut opts = FileOptions::new(path, "node-a");
    opts.poll = Duration::from_millis(50);
    let agent = Agent::spawn(&k, file::start(opts), s);
    eventually("file source synced", || agent.obs.count() >= 1).await;

    // What `kube-ipvs plan -f examples/cluster.yaml --node node-a` computes, applied to an
    // empty kernel.
    let mut dump = ClusterDump::default();
    dump.read_file(std::path::Path::new(path)).unwrap();
    let mut cfg = PlannerConfig::new("node-a");
    cfg.node_addresses = node_ips;
    let mut e = Engine::new(cfg);
    e.load(&dump);
    let ops = e.plan_full(Duration::ZERO);
    let mut want = ObservedState::new();
    want.apply_all(&ops).unwrap();
    assert!(want.virtual_servers().len() > 5);
    {
        let h = k.handle();
        assert_eq!(h.state.virtual_servers(), want.virtual_servers());
        assert_eq!(h.state.routes(), want.routes());
        assert_eq!(h.state.bound(), want.bound());
        assert_eq!(h.state.ipsets(), want.ipsets());
    }
    agent.stop().await;
}

// ---------- scripted events, paused clock ----------

struct Script {
    tx: mpsc::Sender<ClusterEvent>,
}

impl Script {
    fn new() -> (Self, mpsc::Receiver<ClusterEvent>) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { tx }, rx)
    }

    async fn send(&self, ev: ClusterEvent) {
        self.tx.send(ev).await.unwrap();
    }

    /// A whole list of one kind.
    async fn list<K>(&self, wrap: fn(SourceEvent<K>) -> ClusterEvent, objects: Vec<K>) {
        for ev in list_events(wrap, objects) {
            self.send(ev).await;
        }
    }

    /// The initial lists, then `Synced`.
    async fn initial(&self, svcs: Vec<Service>, slices: Vec<EndpointSlice>) {
        self.list(ClusterEvent::Service, svcs).await;
        self.list(ClusterEvent::Slice, slices).await;
        self.list(ClusterEvent::Node, vec![node()]).await;
        self.list(ClusterEvent::ServiceCidr, vec![]).await;
        self.send(ClusterEvent::Synced).await;
    }

    async fn slice(&self, s: EndpointSlice) {
        self.send(ClusterEvent::Slice(SourceEvent::Applied(s)))
            .await;
    }
}

/// An agent on a fake kernel, started with one Service `web` (10.96.0.10, endpoint 10.1.0.1)
/// and past its start-up sync.
async fn web_started(settings: Settings) -> (Script, FakeKernel, Agent) {
    let (script, rx) = Script::new();
    let k = kernel();
    let agent = Agent::spawn(&k, rx, settings);
    script
        .initial(
            vec![svc("web", "10.96.0.10")],
            vec![slice("web-1", "web", &["10.1.0.1"])],
        )
        .await;
    eventually("start-up sync", || agent.obs.count() == 1).await;
    (script, k, agent)
}

#[tokio::test(start_paused = true)]
async fn no_sync_before_synced_even_with_objects_delivered() {
    let (script, rx) = Script::new();
    let k = kernel();
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(30), Duration::ZERO));
    script
        .list(ClusterEvent::Service, vec![svc("web", "10.96.0.10")])
        .await;
    script.list(ClusterEvent::Slice, vec![]).await;
    sleep(Duration::from_secs(120)).await;
    assert!(!k.handle().prepared && k.handle().observes == 0);
    assert_eq!(agent.obs.count(), 0);
    script.list(ClusterEvent::Node, vec![node()]).await;
    script.list(ClusterEvent::ServiceCidr, vec![]).await;
    script.send(ClusterEvent::Synced).await;
    eventually("programmed", || table(&k) == ["TCP 10.96.0.10:80 ->"]).await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn changes_are_coalesced_and_syncs_rate_limited_by_min_sync_period() {
    let (script, k, agent) =
        web_started(settings(Duration::from_secs(60), Duration::from_secs(1))).await;
    let t0 = agent.obs.times()[0];

    // Ten endpoint changes spread over 0.9 s: one sync, one second after the previous.
    for i in 2..12 {
        sleep(Duration::from_millis(90)).await;
        let ips: Vec<String> = (1..=i).map(|n| format!("10.1.0.{n}")).collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        script.slice(slice("web-1", "web", &ips)).await;
    }
    eventually("second sync", || agent.obs.count() == 2).await;
    sleep(Duration::from_secs(5)).await;
    assert_eq!(agent.obs.count(), 2, "one sync for all ten changes");
    let r = agent.obs.reports()[1].clone();
    assert_eq!(r.kind, SyncKind::Incremental);
    assert_eq!(r.endpoint_changes, 10);
    assert_eq!(r.programming_latencies.len(), 10);
    assert_eq!(r.applied["add_rs"], 10);
    let gap = agent.obs.times()[1] - t0;
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_millis(1100),
        "{gap:?}"
    );
    assert_eq!(table(&k)[0].matches("/1").count(), 11);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_repair_runs_every_sync_period_and_fixes_drift() {
    let (_script, k, agent) = web_started(settings(Duration::from_secs(30), Duration::ZERO)).await;
    // Someone deletes our virtual server behind our back.
    let key = *k.handle().state.virtual_servers().keys().next().unwrap();
    k.handle().state.apply(&Op::DelVs { key }).unwrap();
    sleep(Duration::from_secs(29)).await;
    assert!(table(&k).is_empty(), "no repair before syncPeriod");
    eventually("repaired", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1"]
    })
    .await;
    let kinds: Vec<SyncKind> = agent.obs.reports().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [SyncKind::Full, SyncKind::Full]);
    assert_eq!(k.handle().observes, 2);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn changes_are_synced_while_a_repair_reads_a_large_table() {
    let (script, k, agent) = web_started(settings(Duration::from_secs(30), Duration::ZERO)).await;
    // The next repair's full read takes a snapshot at once and needs 10 s to come back.
    k.handle().read_delay = Duration::from_secs(10);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(k.handle().observes, 2, "the repair's full read is running");

    // A change during the read reaches the kernel at once, not after the read.
    let t = Instant::now();
    script
        .slice(slice("web-1", "web", &["10.1.0.1", "10.1.0.2"]))
        .await;
    eventually("programmed during the read", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1"]
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let kinds: Vec<SyncKind> = agent.obs.reports().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [SyncKind::Full, SyncKind::Incremental]);

    // The read missed the new real server; the repair replays what was applied meanwhile, so it
    // neither adds it again nor reports drift.
    eventually("repair done", || agent.obs.count() == 3).await;
    let repair = agent.obs.reports()[2].clone();
    assert_eq!(repair.kind, SyncKind::Full);
    assert!(
        repair.applied.is_empty() && repair.failed.is_empty(),
        "{repair:?}"
    );
    assert_eq!(
        table(&k),
        ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/1"]
    );
    // The next repair is due syncPeriod after this one ended, not after it started.
    sleep(Duration::from_secs(29)).await;
    assert_eq!(
        k.handle().observes,
        2,
        "no repair before syncPeriod after the last ended"
    );
    eventually("next repair", || k.handle().observes == 3).await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cluster_wide_figures_are_reported_at_most_once_a_second_and_never_left_stale() {
    let (script, _k, agent) = web_started(settings(Duration::from_secs(600), Duration::ZERO)).await;
    assert_eq!(
        agent.obs.clusters.lock().unwrap().len(),
        1,
        "after the full sync"
    );

    // Ten syncs 100 ms apart, each with one more slice whose Service does not exist.
    for i in 2..12 {
        let ips: Vec<String> = (1..=i).map(|n| format!("10.1.0.{n}")).collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        script.slice(slice("web-1", "web", &ips)).await;
        script
            .slice(slice(&format!("ghost-{i}"), "ghost", &["10.2.0.1"]))
            .await;
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(2)).await;
    assert!(agent.obs.count() >= 10, "{}", agent.obs.count());
    let clusters = agent.obs.clusters.lock().unwrap().clone();
    // The start-up one, one or two during the burst, one within a second after it.
    assert!(clusters.len() <= 4, "{clusters:?}");
    for w in clusters.windows(2) {
        assert!(w[1].0 - w[0].0 >= Duration::from_secs(1), "{clusters:?}");
    }
    assert_eq!(
        clusters.last().unwrap().1,
        10,
        "every orphan slice reported"
    );
    agent.stop().await;
}

/// `(kind, target, attempts)` of each failing op.
fn log_view(f: &kube_ipvs::failures::Failures) -> Vec<(&str, &str, u32)> {
    f.failed
        .iter()
        .map(|f| (f.kind.as_str(), f.target.as_str(), f.attempts))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn refused_ops_are_counted_and_retried_without_blocking_other_services() {
    let (script, rx) = Script::new();
    let k = kernel();
    let broken = "10.96.0.20".parse::<std::net::IpAddr>().unwrap();
    k.handle().fail_op = Some(Arc::new(move |op: &Op| match op {
        Op::AddVs { key, .. } => key.addr() == Some(broken),
        _ => false,
    }));
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(60), Duration::ZERO));
    script
        .initial(
            vec![svc("web", "10.96.0.10"), svc("db", "10.96.0.20")],
            vec![
                slice("web-1", "web", &["10.1.0.1"]),
                slice("db-1", "db", &["10.1.0.5"]),
            ],
        )
        .await;
    eventually("start-up sync", || agent.obs.count() == 1).await;
    assert_eq!(table(&k), [WEB], "web is programmed despite db failing");
    let r = agent.obs.reports()[0].clone();
    assert_eq!(r.failed.get("add_vs"), Some(&1));
    assert_eq!(
        r.failed.get("add_rs"),
        Some(&1),
        "its real server has no VS"
    );
    assert_eq!(r.applied["add_vs"], 1);

    // Still failing: retried with backoff (1 s, 2 s, ...), each attempt counted.
    sleep(Duration::from_millis(3500)).await;
    let retries = agent.obs.reports();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(retries[1..].iter().all(|r| r.kind == SyncKind::Incremental
        && r.failed.get("add_vs") == Some(&1)
        && r.applied.is_empty()));

    // What the agent publishes for `explain` (the failures file) follows the reports: db's
    // two refused ops, each tried three times.
    let mut log = kube_ipvs::failures::FailureLog::new(None);
    for r in &retries {
        log.observe(r);
    }
    let failures = log.failures();
    assert_eq!(
        log_view(&failures),
        [
            ("add_rs", "TCP  10.96.0.20:80", 3),
            ("add_vs", "TCP  10.96.0.20:80", 3)
        ]
    );

    // The kernel accepts it now: the next retry programs db, with no cluster event at all.
    k.handle().fail_op = None;
    eventually("db programmed", || table(&k) == [WEB, DB]).await;
    let last = agent.obs.reports().last().unwrap().clone();
    assert!(last.failed.is_empty());
    log.observe(&last);
    assert!(log.failures().failed.is_empty(), "nothing fails any more");
    assert_eq!(last.applied["add_vs"], 1);
    sleep(Duration::from_secs(20)).await;
    let n = agent.obs.count();
    sleep(Duration::from_secs(20)).await;
    assert_eq!(
        agent.obs.count(),
        n,
        "no more retries once everything applied"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_removed_endpoint_drains_then_is_deleted() {
    let (script, rx) = Script::new();
    let k = kernel();
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(600), Duration::ZERO));
    script
        .initial(
            vec![svc("web", "10.96.0.10")],
            vec![slice("web-1", "web", &["10.1.0.1", "10.1.0.2"])],
        )
        .await;
    eventually("start-up sync", || agent.obs.count() == 1).await;
    // Connections arrive at 10.1.0.2 after the start-up read: the cache does not know them.
    let (vs, rs) = {
        let h = k.handle();
        let (vs, v) = h.state.virtual_servers().iter().next().unwrap();
        (*vs, v.reals[1].key)
    };
    k.handle().state.set_connections(&vs, &rs, 3, 1);

    script.slice(slice("web-1", "web", &["10.1.0.1"])).await;
    eventually("weight 0", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/0"]
    })
    .await;
    // Drain ticks with live connections keep it.
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        table(&k),
        ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1 10.1.0.2:8080/0"]
    );
    let drains = agent.obs.count_of(SyncKind::Drain);
    assert!(drains >= 3, "drain ticks ran: {drains}");
    assert_eq!(agent.obs.reports().last().unwrap().drain_backlog, 1);

    // Connections end: the next tick deletes it.
    k.handle().state.set_connections(&vs, &rs, 0, 0);
    eventually("deleted", || {
        table(&k) == ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1"]
    })
    .await;
    let last = agent.obs.reports().last().unwrap().clone();
    assert_eq!(last.kind, SyncKind::Drain);
    assert_eq!(last.applied.get("del_rs"), Some(&1));
    assert_eq!(last.drain_backlog, 0);
    let n = agent.obs.count();
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        agent.obs.count(),
        n,
        "the drain timer stops with nothing draining"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_large_drain_backlog_is_read_over_several_ticks() {
    let (script, rx) = Script::new();
    let k = kernel();
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(600), Duration::ZERO));
    let n = 200u8;
    let name = |i: u8| format!("s{i}");
    script
        .initial(
            (0..n)
                .map(|i| svc(&name(i), &format!("10.96.1.{i}")))
                .collect(),
            (0..n)
                .map(|i| {
                    slice(
                        &name(i),
                        &name(i),
                        &[&format!("10.1.{i}.1"), &format!("10.1.{i}.2")],
                    )
                })
                .collect(),
        )
        .await;
    eventually("start-up sync", || agent.obs.count() == 1).await;
    // A rollout removes one endpoint of every Service: 200 virtual servers drain, all idle.
    for i in 0..n {
        script
            .slice(slice(&name(i), &name(i), &[&format!("10.1.{i}.1")]))
            .await;
    }
    eventually("every Service drained", || {
        let t = agent.obs.reports();
        t.last()
            .is_some_and(|r| r.kind == SyncKind::Drain && r.drain_backlog == 0)
    })
    .await;
    // One tick reads 128 virtual servers' counters (and deletes their idle real servers), the
    // next the remaining 72: no tick reads the whole backlog.
    let drains: Vec<(u64, usize)> = agent
        .obs
        .reports()
        .iter()
        .filter(|r| r.kind == SyncKind::Drain)
        .map(|r| {
            (
                r.applied.get("del_rs").copied().unwrap_or(0),
                r.drain_backlog,
            )
        })
        .collect();
    assert_eq!(drains, [(128, 72), (72, 0)]);
    assert!(
        k.handle()
            .state
            .virtual_servers()
            .values()
            .all(|v| v.reals.len() == 1)
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_kernel_is_retried_with_backoff_and_never_ends_the_agent() {
    let (script, rx) = Script::new();
    let k = kernel();
    k.handle().fail_all = true;
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(30), Duration::ZERO));
    script
        .initial(
            vec![svc("web", "10.96.0.10")],
            vec![slice("web-1", "web", &["10.1.0.1"])],
        )
        .await;
    sleep(Duration::from_secs(60)).await;
    assert!(!agent.task.is_finished());
    assert_eq!(agent.obs.count(), 0, "no sync completed");
    assert!(table(&k).is_empty());
    k.handle().fail_all = false;
    // Backoff is capped at syncPeriod.
    sleep(Duration::from_secs(31)).await;
    assert_eq!(table(&k), ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1"]);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_empty_initial_service_list_keeps_the_kernel_until_the_next_full_sync() {
    let k = kernel();
    {
        let (script, rx) = Script::new();
        let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(30), Duration::ZERO));
        script
            .initial(
                vec![svc("web", "10.96.0.10")],
                vec![slice("web-1", "web", &["10.1.0.1"])],
            )
            .await;
        eventually("programmed", || table(&k).len() == 1).await;
        agent.stop().await;
    }
    let (script, rx) = Script::new();
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(30), Duration::ZERO));
    script.initial(vec![], vec![]).await;
    eventually("start-up sync", || agent.obs.count() == 1).await;
    assert_eq!(table(&k), ["TCP 10.96.0.10:80 -> 10.1.0.1:8080/1"]);
    // Still empty at the next full sync: now it is believed.
    sleep(Duration::from_secs(31)).await;
    assert!(table(&k).is_empty());
    agent.stop().await;
}

/// An agent on a fake kernel with eight Services (10.96.1.0-7, endpoints 10.1.N.1 and 10.1.N.2)
/// whose periodic repair verifies them in four slices of two (so the table counts as large).
async fn eight_started() -> (Script, FakeKernel, Agent) {
    eight_started_in(4, 2).await
}

/// [`eight_started`], verified in `slices` slices read in pieces of `piece` virtual servers.
async fn eight_started_in(slices: usize, piece: usize) -> (Script, FakeKernel, Agent) {
    let (script, rx) = Script::new();
    let k = kernel();
    let mut s = settings(Duration::from_secs(30), Duration::ZERO);
    s.timing.verify_slices = slices;
    s.timing.verify_slice_min = 2;
    s.timing.verify_piece = piece;
    let agent = Agent::spawn(&k, rx, s);
    let name = |i: u8| format!("s{i}");
    script
        .initial(
            (0..8)
                .map(|i| svc(&name(i), &format!("10.96.1.{i}")))
                .collect(),
            (0..8)
                .map(|i| {
                    slice(
                        &name(i),
                        &name(i),
                        &[&format!("10.1.{i}.1"), &format!("10.1.{i}.2")],
                    )
                })
                .collect(),
        )
        .await;
    eventually("start-up sync", || agent.obs.count() == 1).await;
    (script, k, agent)
}

#[tokio::test(start_paused = true)]
async fn a_large_table_is_verified_in_slices_and_drift_is_repaired_within_a_cycle() {
    let (_script, k, agent) = eight_started().await;
    let programmed = table(&k);
    assert_eq!(programmed.len(), 8);
    let members = k.handle().state.ipsets().clone();
    let keys: Vec<_> = k.handle().state.virtual_servers().keys().copied().collect();
    // Behind the agent's back: the last virtual server is deleted, a real server of the first
    // gets weight 0, a ClusterIP set member goes, and a virtual server nobody wants appears on
    // a ClusterIP of ours.
    {
        let mut h = k.handle();
        h.state.apply(&Op::DelVs { key: keys[7] }).unwrap();
        let rs = h.state.virtual_servers()[&keys[0]].reals[0];
        h.state
            .apply(&Op::UpdateRs {
                vs: keys[0],
                rs: kube_ipvs::types::RealServer { weight: 0, ..rs },
            })
            .unwrap();
        let (set, entry) = members
            .iter()
            .find(|(_, m)| m.len() == 8)
            .map(|(s, m)| (*s, *m.iter().next().unwrap()))
            .unwrap();
        h.state.apply(&Op::IpsetDel { set, entry }).unwrap();
        let stray = kube_ipvs::types::VsKey::new(
            kube_ipvs::types::Proto::Udp,
            "10.96.1.3".parse().unwrap(),
            53,
        );
        let spec = h.state.virtual_servers()[&keys[0]].spec;
        h.state.insert_vs(stray, spec, Vec::new());
    }
    // Four periods: one slice of two virtual servers each, the last with the rest of the table.
    sleep(Duration::from_secs(4 * 30 + 5)).await;
    {
        let h = k.handle();
        assert_eq!(h.observes, 1, "only start-up reads the whole table");
        let reads: Vec<(usize, bool)> = h.reads.iter().map(|r| (r.vs.len(), r.table)).collect();
        assert_eq!(reads, [(2, false), (2, false), (2, false), (2, true)]);
        let read: Vec<_> = h.reads.iter().flat_map(|r| r.vs.iter().copied()).collect();
        assert_eq!(read, keys, "every virtual server read once, in turn");
    }
    assert_eq!(table(&k), programmed, "every drift repaired");
    assert_eq!(k.handle().state.ipsets(), &members);
    let kinds: Vec<SyncKind> = agent.obs.reports().iter().map(|r| r.kind).collect();
    assert_eq!(kinds[0], SyncKind::Full);
    assert!(
        kinds[1..].iter().all(|k| *k == SyncKind::Verify),
        "{kinds:?}"
    );
    // A cycle with nothing to repair applies nothing.
    let n = agent.obs.count();
    sleep(Duration::from_secs(4 * 30)).await;
    let quiet = agent.obs.reports();
    assert!(quiet.len() >= n + 4);
    assert!(
        quiet[n..]
            .iter()
            .all(|r| r.applied.is_empty() && r.failed.is_empty()),
        "{:?}",
        &quiet[n..]
    );
    agent.stop().await;
}

/// A slice is read in pieces back to back, each planned and applied on its own (the loop's
/// share of a repair is a piece, not the table); the next slice comes a period later, and a
/// cycle still reads every virtual server once, the table with its last piece.
#[tokio::test(start_paused = true)]
async fn a_slice_is_read_in_pieces_back_to_back() {
    let (_script, k, agent) = eight_started_in(2, 3).await;
    let keys: Vec<_> = k.handle().state.virtual_servers().keys().copied().collect();
    let reads = |k: &FakeKernel| -> Vec<(usize, bool)> {
        k.handle()
            .reads
            .iter()
            .map(|r| (r.vs.len(), r.table))
            .collect()
    };
    sleep(Duration::from_secs(29)).await;
    assert!(reads(&k).is_empty(), "nothing before the period");
    sleep(Duration::from_secs(6)).await;
    assert_eq!(
        reads(&k),
        [(3, false), (1, false)],
        "one slice of 4: two pieces"
    );
    sleep(Duration::from_secs(20)).await;
    assert_eq!(reads(&k).len(), 2, "the next slice a period later");
    sleep(Duration::from_secs(15)).await;
    assert_eq!(
        reads(&k),
        [(3, false), (1, false), (3, false), (1, true)],
        "the cycle's last piece reads the table"
    );
    let read: Vec<_> = k.handle().reads.iter().flat_map(|r| r.vs.clone()).collect();
    assert_eq!(read, keys, "every virtual server read once, in turn");
    assert_eq!(
        agent.obs.count_of(SyncKind::Verify),
        4,
        "each piece a sync of its own"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_verification_slice_neither_undoes_nor_repeats_changes_synced_while_it_read() {
    let (script, k, agent) = eight_started().await;
    k.handle().read_delay = Duration::from_secs(10);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(k.handle().reads.len(), 1, "the first slice is reading");
    let first = k.handle().reads[0].vs[0];
    // The slice's Service s0 changes while the slice reads: at once, not after the read.
    let t = Instant::now();
    script
        .slice(slice("s0", "s0", &["10.1.0.1", "10.1.0.2", "10.1.0.3"]))
        .await;
    eventually("programmed during the read", || {
        k.handle().state.virtual_servers()[&first].reals.len() == 3
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    eventually("slice done", || {
        agent.obs.reports().last().unwrap().kind == SyncKind::Verify
    })
    .await;
    let slice_sync = agent.obs.reports().last().unwrap().clone();
    assert!(
        slice_sync.applied.is_empty() && slice_sync.failed.is_empty(),
        "the read missed the new real server; the replay keeps it: {slice_sync:?}"
    );
    assert_eq!(k.handle().state.virtual_servers()[&first].reals.len(), 3);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_never_waits_for_a_drain_tick_reading_counters() {
    let (script, k, agent) = eight_started().await;
    // Removing an endpoint of s0 drains it (the cache assumes connections); the drain tick's
    // read takes 10 s.
    script.slice(slice("s0", "s0", &["10.1.0.1"])).await;
    eventually("draining", || {
        agent.obs.reports().last().unwrap().drain_backlog == 1
    })
    .await;
    k.handle().read_delay = Duration::from_secs(10);
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(k.handle().reads.len(), 1, "the drain tick is reading");
    let t = Instant::now();
    script
        .slice(slice("s1", "s1", &["10.1.1.1", "10.1.1.2", "10.1.1.3"]))
        .await;
    eventually("programmed during the drain read", || {
        table(&k)[1].contains("10.1.1.3")
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The read ends: the idle real server is deleted.
    eventually("drained", || !table(&k)[0].contains("10.1.0.2")).await;
    let last = agent.obs.reports().last().unwrap().clone();
    assert_eq!(last.kind, SyncKind::Drain);
    assert_eq!(last.applied.get("del_rs"), Some(&1));
    agent.stop().await;
}

/// A node taken over with every ClusterIP bound (stock's way, here from a run with
/// `--bind-cluster-ips`): the first sync of an agent that routes the service CIDR adds the route
/// and nothing else; the bound addresses go afterwards in batches of at most 64, each a retire
/// sync of its own, and a change arriving meanwhile is synced before the retiring ends.
#[tokio::test(start_paused = true)]
async fn bound_cluster_ips_are_retired_in_batches_after_the_route_and_changes_go_first() {
    let svcs: Vec<Service> = (0..200u32)
        .map(|i| {
            svc(
                &format!("s{i}"),
                &format!("10.96.{}.{}", i / 250, 1 + i % 250),
            )
        })
        .collect();
    let (script, rx) = Script::new();
    let k = kernel();
    let mut bound = settings(Duration::from_secs(600), Duration::ZERO);
    bound.planner.bind_cluster_ips = true;
    let stock = Agent::spawn(&k, rx, bound);
    script.initial(svcs.clone(), vec![]).await;
    eventually("all bound", || k.handle().state.bound().len() == 200).await;
    stock.stop().await;

    let (script, rx) = Script::new();
    let agent = Agent::spawn(&k, rx, settings(Duration::from_secs(600), Duration::ZERO));
    script.initial(svcs, vec![]).await;
    eventually("first sync", || agent.obs.count() >= 1).await;
    let first = agent.obs.reports()[0].clone();
    assert_eq!(first.kind, SyncKind::Full);
    assert_eq!(
        first.applied.into_iter().collect::<Vec<_>>(),
        [("add_route", 1)]
    );
    eventually("a retire batch", || {
        agent
            .obs
            .reports()
            .iter()
            .any(|r| r.kind == SyncKind::Retire)
    })
    .await;
    script.slice(slice("s0-1", "s0", &["10.1.0.1"])).await;
    eventually("all retired", || k.handle().state.bound().is_empty()).await;
    eventually("endpoint added", || {
        table(&k).iter().any(|t| t.contains("10.1.0.1:8080/1"))
    })
    .await;
    let reports = agent.obs.reports();
    let retires: Vec<u64> = reports
        .iter()
        .filter(|r| r.kind == SyncKind::Retire)
        .map(|r| r.applied.get("unbind_addr").copied().unwrap_or(0))
        .collect();
    assert!(retires.iter().all(|n| *n <= 64), "{retires:?}");
    assert_eq!(retires.iter().sum::<u64>(), 200);
    let change = reports
        .iter()
        .position(|r| r.kind == SyncKind::Incremental)
        .unwrap();
    let last_retire = reports
        .iter()
        .rposition(|r| r.kind == SyncKind::Retire && r.applied.contains_key("unbind_addr"))
        .unwrap();
    assert!(
        change < last_retire,
        "the change waited for the retiring: {reports:?}"
    );
    let ips = kube_ipvs::types::IpsetName::new(kube_ipvs::types::SetKind::IpvsIps, Family::V4);
    assert!(
        k.handle()
            .state
            .ipsets()
            .get(&ips)
            .is_none_or(|m| m.is_empty())
    );
    agent.stop().await;
}
