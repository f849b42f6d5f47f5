//! The file source: initial load, reload on change, bad files keep the last state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{self, FileOptions};
use super::tests_support::{Regroup, Sent};
use super::{ClusterEvent, Sources};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kube-ipvs-source-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CLUSTER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {a: b}}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: hl, namespace: default, labels: {service.kubernetes.io/headless: ""}}
spec: {clusterIP: None}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {topology.kubernetes.io/zone: z1}}
- apiVersion: v1
  kind: Node
  metadata: {name: n2}
"#;

const SLICES: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.1]}]
"#;

fn start(dir: &Path) -> Sources {
    let mut opts = FileOptions::new(dir, "n1");
    opts.poll = Duration::from_millis(50);
    file::start(opts)
}

/// How long a test waits for each event.
const LIMIT: Duration = Duration::from_secs(10);

/// Rewrites a file so its mtime or size surely changes.
fn rewrite(p: &Path, text: &str) {
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(p, text).unwrap();
}

#[tokio::test]
async fn loads_a_directory_then_reloads_on_change() {
    let dir = TempDir::new("reload");
    std::fs::write(dir.0.join("cluster.yaml"), CLUSTER).unwrap();
    std::fs::write(dir.0.join("slices.yml"), SLICES).unwrap();
    std::fs::write(dir.0.join("notes.txt"), "not yaml: [").unwrap();
    let mut s = start(&dir.0);
    let mut lists = Regroup::default();
    let mut evs = Vec::new();
    loop {
        let sent = lists.next(&mut s, LIMIT).await;
        if sent == Sent::Event(ClusterEvent::Synced) {
            break;
        }
        evs.push(sent);
    }
    assert!(s.is_ready());
    assert_eq!(evs.len(), 4);
    for ev in &evs {
        match ev {
            Sent::Services(v) => {
                assert_eq!(v.len(), 1, "headless Service filtered");
                assert!(v[0].metadata.annotations.is_none(), "stripped");
            }
            Sent::Slices(v) => assert_eq!(v.len(), 1),
            Sent::Nodes(v) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].metadata.name.as_deref(), Some("n1"));
            }
            Sent::Cidrs(v) => assert!(v.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    // A change to one file re-emits only the kinds that changed.
    rewrite(
        &dir.0.join("slices.yml"),
        &SLICES.replace("10.1.0.1", "10.1.0.2"),
    );
    match lists.next(&mut s, LIMIT).await {
        Sent::Slices(v) => assert_eq!(v[0].endpoints[0].addresses, ["10.1.0.2"]),
        other => panic!("{other:?}"),
    }

    // A broken file keeps the last state: nothing is emitted.
    rewrite(&dir.0.join("slices.yml"), "kind: [unclosed");
    assert!(
        tokio::time::timeout(Duration::from_millis(400), s.recv())
            .await
            .is_err()
    );

    // Fixed again, and the slice file removed entirely: slices become empty.
    std::fs::remove_file(dir.0.join("slices.yml")).unwrap();
    match lists.next(&mut s, LIMIT).await {
        Sent::Slices(v) => assert!(v.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_path_is_not_ready_until_it_appears() {
    let dir = TempDir::new("missing");
    let file = dir.0.join("cluster.yaml");
    let mut s = start(&file);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.recv())
            .await
            .is_err()
    );
    assert!(!s.is_ready());
    std::fs::write(&file, CLUSTER).unwrap();
    let mut lists = Regroup::default();
    let mut n = 0;
    while lists.next(&mut s, LIMIT).await != Sent::Event(ClusterEvent::Synced) {
        n += 1;
    }
    assert_eq!(n, 4, "one list per kind");
    assert!(s.is_ready());
}
