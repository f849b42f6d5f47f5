//! Constructed state for the checks' tests: a cluster from a dump, and a node where everything
//! holds (a fake kernel holding exactly the plan, the iptables rules kube-ipvs renders, a healthy
//! fake agent); each test breaks one thing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use nodenet::iptables::save::SavedTable;

use super::super::gather::parse_metrics;
use super::super::inputs::{
    AgentView, Cluster, ConntrackView, HttpAnswer, Inputs, KernelRs, KernelView, KernelVs, Probe,
    ProbeResult, Rules, Settings, Target,
};
use super::super::report::{Check, Report};
use super::super::subject::Subject;
use super::{Ctx, probe_targets};
use crate::agent::{ChangeKind, Observer as _, SyncKind};
use crate::config::Config;
use crate::dump::ClusterDump;
use crate::failures::Failures;
use crate::owners::Owners;
use crate::planner_config::PlannerConfig;
use crate::telemetry::{Telemetry, TelemetryOptions};
use crate::types::Family;

/// The node the tests explain on.
pub const NODE: &str = "node-a";

/// A NodePort Service with two ready endpoints, one of them on this node.
pub const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080, nodePort: 30080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- {addresses: [10.244.1.5], nodeName: node-a, conditions: {ready: true}}
- {addresses: [10.244.2.6], nodeName: node-b, conditions: {ready: true}}
ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 192.168.1.10}]}
"#;

/// Unix time of "now" in the fixtures.
pub const NOW: u64 = 1_760_000_000;

/// The cluster of `yaml` for `shop/web`.
pub fn cluster(yaml: &str) -> Cluster {
    let mut dump = ClusterDump::default();
    dump.parse(yaml, "test").unwrap();
    assert!(dump.bad.is_empty(), "{:?}", dump.bad);
    let is_web = |ns: Option<&String>, n: Option<&String>| {
        ns.map(String::as_str) == Some("shop") && n.map(String::as_str) == Some("web")
    };
    Cluster {
        source: "the dump test".into(),
        service: dump
            .services
            .iter()
            .find(|s| is_web(s.metadata.namespace.as_ref(), s.metadata.name.as_ref()))
            .cloned(),
        slices: dump
            .slices
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some("shop")
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(crate::model::LABEL_SERVICE_NAME))
                        .map(String::as_str)
                        == Some("web")
            })
            .cloned()
            .collect(),
        node: dump.node(NODE).cloned(),
        service_cidrs: dump.service_cidrs.clone(),
    }
}

/// The agent's configuration: service CIDR 10.96.0.0/16 routed, node address 192.168.1.10.
pub fn settings() -> Settings {
    let mut planner = PlannerConfig::new(NODE);
    planner.families = vec![Family::V4];
    planner.service_cidrs = vec!["10.96.0.0/16".parse().unwrap()];
    planner.node_addresses = vec!["192.168.1.10".parse().unwrap()];
    Settings {
        planner,
        sync_period: Duration::from_secs(30),
        min_sync_period: Duration::from_secs(1),
        node_port_addresses: "all (not set)".into(),
        dummy_device: "kube-ipvs0".into(),
        healthz: Some("127.0.0.1:10256".parse().unwrap()),
        metrics: Some("127.0.0.1:10249".parse().unwrap()),
        conntrack_max_per_core: Some(32768),
        conntrack_min: 131_072,
    }
}

/// kube-ipvs's own rule set for IPv4 (the golden file of nodenet's renderer, itself checked
/// against iptables in the lab), as `iptables-save` would list it: `-I CHAIN 1 rule` becomes
/// `-A CHAIN rule`.
pub fn golden_rules() -> Rules {
    let text = include_str!("../../../../nodenet/tests/golden/full-v4.rules");
    let mut tables: BTreeMap<&str, String> = BTreeMap::new();
    let mut current = "";
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            current = t;
            continue;
        }
        let line = match line.strip_prefix("-I ") {
            Some(rest) => {
                let mut parts = rest.splitn(3, ' ');
                let (chain, _pos, rule) = (parts.next().unwrap(), parts.next(), parts.next());
                format!("-A {chain} {}", rule.unwrap_or_default())
            }
            None => line.to_string(),
        };
        tables.entry(current).or_default().push_str(&(line + "\n"));
    }
    Rules {
        nat: SavedTable::parse(&tables["nat"]),
        filter: SavedTable::parse(&tables["filter"]),
    }
}

/// The kernel holding exactly the plan of `sub`.
pub fn kernel_of(sub: &Subject) -> KernelView {
    let d = sub.desired();
    let mut k = KernelView {
        node_addresses: sub.config().node_addresses.clone(),
        dummy: Some(d.bound().copied().collect()),
        routes: d.routes().clone(),
        ..KernelView::default()
    };
    for v in sub.virtual_servers() {
        k.vs.insert(
            v.key,
            KernelVs {
                spec: Some(v.spec),
                scheduler: v.spec.scheduler.to_string(),
                reals: v
                    .reals
                    .iter()
                    .map(|r| KernelRs {
                        key: r.key,
                        weight: r.weight,
                        forward: r.forward,
                        active: 0,
                        inactive: 0,
                        conns: 0,
                        bytes_in: 0,
                        bytes_out: 0,
                    })
                    .collect(),
            },
        );
    }
    for (set, members) in d.ipsets() {
        for e in members {
            k.ipset.insert((*set, *e), Ok(true));
        }
    }
    k.iptables.insert(Family::V4, Ok(golden_rules()));
    k
}

/// What the agent's `/metrics` serves (its real registry) after a full sync at `NOW - 2` and
/// then the changes `queued` (kind, Unix time) that no sync took yet.
pub fn agent_metrics(queued: &[(ChangeKind, u64)]) -> BTreeMap<String, f64> {
    let t = Telemetry::new(&Config::default(), TelemetryOptions::default());
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    t.synced(&crate::telemetry::health::tests::report(
        SyncKind::Full,
        at(NOW - 2),
    ));
    for (kind, when) in queued {
        t.queued(*kind, at(*when));
    }
    parse_metrics(&t.metrics_text())
}

/// A healthy node explaining `shop/web` of `yaml`.
pub fn healthy(yaml: &str) -> Inputs {
    let cluster = cluster(yaml);
    let settings = settings();
    let sub = Subject::derive(&cluster, &settings.planner);
    let kernel = sub.as_ref().map(kernel_of).unwrap_or_default();
    let owners = sub
        .as_ref()
        .map(|s| Owners::from_desired(s.desired()).with_node(NODE))
        .unwrap_or_default();
    let health_check = sub.as_ref().and_then(|s| {
        let hc = s.desired().health_checks().get(&s.key)?;
        Some(Ok(HttpAnswer {
            status: if hc.local_endpoints > 0 { 200 } else { 503 },
            body: format!(
                "{{\"service\": {{\"namespace\": \"shop\", \"name\": \"web\"}}, \
                 \"localEndpoints\": {}, \"serviceProxyHealthy\": true}}",
                hc.local_endpoints
            ),
        }))
    });
    let metrics = agent_metrics(&[]);
    let probes = sub.as_ref().map(|s| {
        probe_targets(s)
            .into_iter()
            .map(|endpoint| Probe {
                endpoint,
                result: ProbeResult::Open,
            })
            .collect()
    });
    Inputs {
        target: Target::Service {
            namespace: "shop".into(),
            name: "web".into(),
        },
        resolved: None,
        cluster: Ok(cluster),
        settings,
        kernel: Ok(kernel),
        agent: AgentView {
            healthz: Some(Ok(HttpAnswer {
                status: 200,
                body: "{\"lastUpdated\": \"x\",\"currentTime\": \"x\", \"nodeEligible\": true}"
                    .into(),
            })),
            metrics: Some(Ok(metrics)),
            owners: Ok(owners),
            failures: Ok(Failures::default()),
            health_check,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        },
        conntrack: Ok(Some(ConntrackView {
            count: 100,
            max: 262_144,
            to_service: Some(Ok(3)),
        })),
        probes,
    }
}

/// Runs one check over the inputs.
pub fn check(inputs: &Inputs, f: fn(&Ctx<'_>) -> Check) -> Check {
    let sub = inputs
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| Subject::derive(c, &inputs.settings.planner));
    f(&Ctx {
        inputs,
        subject: sub.as_ref(),
    })
}

/// The whole report.
pub fn report(inputs: &Inputs) -> Report {
    super::super::explain(inputs)
}

/// The planned Service of the inputs.
pub fn subject(inputs: &Inputs) -> Subject {
    Subject::derive(inputs.cluster.as_ref().unwrap(), &inputs.settings.planner).unwrap()
}

/// `yaml` with `from` replaced by `to` (exactly once).
pub fn edit(yaml: &str, from: &str, to: &str) -> String {
    assert_eq!(yaml.matches(from).count(), 1, "{from:?} in {yaml}");
    yaml.replace(from, to)
}
