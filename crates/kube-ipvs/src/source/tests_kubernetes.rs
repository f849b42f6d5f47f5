//! The Kubernetes source against the fake API server over HTTP.

use std::time::Duration;

use fake_apiserver::{FakeApiServer, Kind};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use serde_json::json;

use super::kubernetes::{self, KubernetesOptions};
use super::tests_support::{Regroup, Sent};
use super::{ClusterEvent, SourceEvent, Sources};

fn svc(name: &str, labels: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {
            "namespace": "default", "name": name, "labels": labels,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "kube-ipvs.io/scheduler": "mh"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1"}],
        },
        "spec": {"clusterIP": "10.96.0.10", "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]},
    }))
    .unwrap()
}

fn slice(name: &str, svc: &str, ip: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}}],
    }))
    .unwrap()
}

fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}], "images": [{"names": ["x"]}]},
    }))
    .unwrap()
}

fn cidr() -> ServiceCIDR {
    serde_json::from_value(
        json!({"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/16"]}}),
    )
    .unwrap()
}

async fn populated() -> FakeApiServer {
    let fake = FakeApiServer::start().await.unwrap();
    fake.apply(&svc("web", json!({"app": "web"}))).unwrap();
    fake.apply(&svc("db", json!({}))).unwrap();
    fake.apply(&svc(
        "headless",
        json!({"service.kubernetes.io/headless": ""}),
    ))
    .unwrap();
    fake.apply(&svc(
        "other-proxy",
        json!({"service.kubernetes.io/service-proxy-name": "cilium"}),
    ))
    .unwrap();
    fake.apply(&slice("web-1", "web", "10.1.0.1")).unwrap();
    fake.apply(&node("n1", "z1")).unwrap();
    fake.apply(&node("n2", "z2")).unwrap();
    fake.apply(&cidr()).unwrap();
    fake
}

fn start(fake: &FakeApiServer) -> Sources {
    kubernetes::start(fake.kube_client().unwrap(), &KubernetesOptions::new("n1"))
}

async fn next(s: &mut Sources) -> ClusterEvent {
    tokio::time::timeout(Duration::from_secs(20), s.recv())
        .await
        .expect("timed out")
        .expect("sources ended")
}

/// What the source sends up to and including `Synced`, lists regrouped.
async fn until_synced(s: &mut Sources) -> Vec<Sent> {
    let mut lists = Regroup::default();
    let mut out = Vec::new();
    loop {
        let sent = lists.next(s, Duration::from_secs(20)).await;
        let done = sent == Sent::Event(ClusterEvent::Synced);
        out.push(sent);
        if done {
            return out;
        }
    }
}

/// Waits until the four watches are open (they start right after the initial lists).
async fn watching(fake: &FakeApiServer) {
    for _ in 0..200 {
        if fake.open_watches() == 4 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("watches not open: {}", fake.open_watches());
}

fn names<K: kube::Resource>(objs: &[K]) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

fn listed_services(sent: &[Sent]) -> Vec<Vec<String>> {
    sent.iter()
        .filter_map(|e| match e {
            Sent::Services(v) => Some(names(v)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn initial_lists_with_stock_selector_then_watch_events() {
    let fake = populated().await;
    let mut s = start(&fake);
    assert!(!s.is_ready());
    let evs = until_synced(&mut s).await;
    assert!(s.is_ready());
    assert_eq!(evs.len(), 5, "{evs:?}");
    assert_eq!(listed_services(&evs), [["db", "web"]]);
    for ev in &evs {
        match ev {
            Sent::Slices(v) => assert_eq!(names(v), ["web-1"]),
            Sent::Nodes(v) => assert_eq!(names(v), ["n1"]),
            Sent::Cidrs(v) => assert_eq!(names(v), ["kubernetes"]),
            Sent::Services(_) | Sent::Event(ClusterEvent::Synced) => {}
            other => panic!("unexpected before Synced: {other:?}"),
        }
    }
    let log = fake.request_log();
    let svc_list = log.iter().find(|r| r.is_list_of("services")).unwrap();
    assert!(svc_list.query.contains("labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"), "{}", svc_list.query);
    let node_list = log.iter().find(|r| r.is_list_of("nodes")).unwrap();
    assert!(
        node_list.query.contains("fieldSelector=metadata.name%3Dn1"),
        "{}",
        node_list.query
    );

    // Watch: add, change, delete; another node and excluded Services are invisible.
    fake.apply(&node("n2", "z9")).unwrap();
    fake.apply(&svc(
        "headless2",
        json!({"service.kubernetes.io/headless": ""}),
    ))
    .unwrap();
    fake.apply(&svc("api", json!({}))).unwrap();
    match next(&mut s).await {
        ClusterEvent::Service(SourceEvent::Applied(o)) => {
            assert_eq!(o.metadata.name.as_deref(), Some("api"))
        }
        other => panic!("{other:?}"),
    }
    fake.apply(&node("n1", "z3")).unwrap();
    match next(&mut s).await {
        ClusterEvent::Node(SourceEvent::Applied(n)) => {
            assert_eq!(
                n.metadata.labels.unwrap()["topology.kubernetes.io/zone"],
                "z3"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.delete(Kind::EndpointSlice, Some("default"), "web-1"));
    match next(&mut s).await {
        ClusterEvent::Slice(SourceEvent::Deleted(o)) => {
            assert_eq!(o.metadata.name.as_deref(), Some("web-1"))
        }
        other => panic!("{other:?}"),
    }
    // A Service gaining the headless label leaves the selection: the server sends DELETED.
    fake.apply(&svc("db", json!({"service.kubernetes.io/headless": ""})))
        .unwrap();
    match next(&mut s).await {
        ClusterEvent::Service(SourceEvent::Deleted(o)) => {
            assert_eq!(o.metadata.name.as_deref(), Some("db"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn objects_are_stripped() {
    let fake = populated().await;
    let mut s = start(&fake);
    for ev in until_synced(&mut s).await {
        match ev {
            Sent::Services(v) => {
                for o in v {
                    assert!(o.metadata.managed_fields.is_none());
                    let ann = o.metadata.annotations.unwrap();
                    assert_eq!(ann.keys().collect::<Vec<_>>(), ["kube-ipvs.io/scheduler"]);
                    assert!(o.spec.unwrap().selector.is_none());
                }
            }
            Sent::Slices(v) => assert!(v[0].endpoints[0].target_ref.is_none()),
            Sent::Nodes(v) => {
                let st = v[0].status.clone().unwrap();
                assert!(st.images.is_none() && st.addresses.is_some());
            }
            _ => {}
        }
    }
    fake.apply(&svc("api", json!({}))).unwrap();
    match next(&mut s).await {
        ClusterEvent::Service(SourceEvent::Applied(o)) => {
            assert!(o.metadata.managed_fields.is_none())
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gone_after_compaction_relists_as_replaced_without_deletions() {
    let fake = populated().await;
    let mut s = start(&fake);
    until_synced(&mut s).await;
    watching(&fake).await;
    // Changes while the watch is cut, then the history is compacted: the watcher must re-list.
    fake.disconnect_watches();
    fake.compact();
    fake.apply(&svc("api", json!({}))).unwrap();
    assert!(fake.delete(Kind::Service, Some("default"), "web"));
    fake.compact();
    let mut lists = Regroup::default();
    let mut evs = Vec::new();
    while !listed_services(&evs)
        .iter()
        .any(|v| v.contains(&"api".to_owned()))
    {
        evs.push(lists.next(&mut s, Duration::from_secs(20)).await);
    }
    assert_eq!(listed_services(&evs).last().unwrap(), &["api", "db"]);
    assert!(
        evs.iter().all(|e| !matches!(e, Sent::Event(_))),
        "a re-list must arrive as lists, not as single events: {evs:?}"
    );
    // Unchanged kinds are re-listed in full, never flushed.
    for e in &evs {
        if let Sent::Slices(v) = e {
            assert_eq!(names(v), ["web-1"]);
        }
    }
    let lists = fake
        .request_log()
        .iter()
        .filter(|r| r.is_list_of("services"))
        .count();
    assert!(lists >= 2);
    // Watching continues afterwards.
    fake.apply(&svc("late", json!({}))).unwrap();
    loop {
        if let ClusterEvent::Service(SourceEvent::Applied(o)) = next(&mut s).await {
            assert_eq!(o.metadata.name.as_deref(), Some("late"));
            break;
        }
    }
}

#[tokio::test]
async fn dropped_watches_resume_without_relist() {
    let fake = populated().await;
    let mut s = start(&fake);
    until_synced(&mut s).await;
    let lists = |f: &FakeApiServer| {
        f.request_log()
            .iter()
            .filter(|r| r.method == "GET" && !r.watch)
            .count()
    };
    let before = lists(&fake);
    watching(&fake).await;
    assert_eq!(fake.disconnect_watches(), 4);
    fake.apply(&svc("api", json!({}))).unwrap();
    match next(&mut s).await {
        ClusterEvent::Service(SourceEvent::Applied(o)) => {
            assert_eq!(o.metadata.name.as_deref(), Some("api"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lists(&fake),
        before,
        "a dropped watch resumes from its resourceVersion"
    );
    // An API outage (watches cut, every request failing for a while) recovers with no deletions.
    fake.disconnect_watches();
    fake.fail_next(6);
    fake.apply(&slice("web-2", "web", "10.1.0.2")).unwrap();
    let mut lists = Regroup::default();
    loop {
        match lists.next(&mut s, Duration::from_secs(20)).await {
            Sent::Event(ClusterEvent::Slice(SourceEvent::Applied(o))) => {
                assert_eq!(o.metadata.name.as_deref(), Some("web-2"));
                break;
            }
            Sent::Slices(v) => {
                assert_eq!(names(&v), ["web-1", "web-2"]);
                break;
            }
            e @ Sent::Event(
                ClusterEvent::Service(SourceEvent::Deleted(_))
                | ClusterEvent::Slice(SourceEvent::Deleted(_)),
            ) => {
                panic!("{e:?}")
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn service_cidrs_not_served_still_ready() {
    let fake = populated().await;
    fake.set_served(Kind::ServiceCidr, false);
    let mut s = start(&fake);
    let evs = until_synced(&mut s).await;
    assert!(evs.contains(&Sent::Cidrs(Vec::new())));
    assert!(s.is_ready());
}

#[tokio::test]
async fn not_ready_until_every_initial_list_succeeds() {
    let fake = populated().await;
    fake.refuse_lists(true);
    let mut s = start(&fake);
    let early = tokio::time::timeout(Duration::from_millis(1500), s.recv()).await;
    assert!(
        early.is_err(),
        "nothing may arrive while lists fail: {early:?}"
    );
    assert!(!s.is_ready());
    fake.refuse_lists(false);
    let evs = until_synced(&mut s).await;
    assert_eq!(listed_services(&evs), [["db", "web"]]);
    assert!(s.is_ready());
}

/// kube-runtime's watcher consumes bookmarks without telling its caller: the client layer sees
/// them, so in a quiet cluster the API server's bookmarks keep every kind fresh.
#[tokio::test]
async fn bookmarks_are_signs_of_life() {
    let fake = FakeApiServer::start_with(None).await.unwrap(); // bookmarks on demand only
    fake.apply(&svc("web", json!({}))).unwrap();
    let opts = KubernetesOptions::new("n1");
    let config = kube::Config::new(fake.url().parse().unwrap());
    let client = kubernetes::client_from_config(config, &opts.freshness).unwrap();
    let mut s = kubernetes::start(client, &opts);
    until_synced(&mut s).await;
    watching(&fake).await;
    let quiet = Duration::from_millis(600);
    tokio::time::sleep(quiet).await;
    let ages = opts.freshness.ages();
    assert_eq!(ages.len(), 4, "{ages:?}");
    assert!(ages.iter().all(|(_, age)| *age >= quiet), "{ages:?}");
    fake.bookmark();
    for _ in 0..200 {
        if opts
            .freshness
            .ages()
            .iter()
            .all(|(_, age)| *age < quiet / 2)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("bookmarks not seen: {:?}", opts.freshness.ages());
}

#[tokio::test]
async fn client_from_a_kubeconfig_file() {
    let fake = populated().await;
    let path =
        std::env::temp_dir().join(format!("kube-ipvs-kubeconfig-{}.yaml", std::process::id()));
    std::fs::write(&path, fake.kubeconfig_yaml()).unwrap();
    let client = kubernetes::client(Some(&path)).await.unwrap();
    let _ = std::fs::remove_file(&path);
    let mut s = kubernetes::start(client, &KubernetesOptions::new("n1"));
    let evs = until_synced(&mut s).await;
    assert_eq!(listed_services(&evs), [["db", "web"]]);
    let missing = kubernetes::client(Some(std::path::Path::new("/nonexistent/kubeconfig")))
        .await
        .err()
        .expect("a missing kubeconfig is an error");
    assert!(
        missing.to_string().contains("/nonexistent/kubeconfig"),
        "{missing}"
    );
}

#[test]
fn node_name_override_is_normalised() {
    assert_eq!(kubernetes::node_name(Some(" Node-A \n")).unwrap(), "node-a");
    // Without an override: $NODE_NAME or the hostname, never empty.
    assert!(!kubernetes::node_name(None).unwrap().is_empty());
}
