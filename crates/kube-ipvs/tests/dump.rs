//! Cluster dumps as large as a real cluster's, through the dump reader `plan` uses and through
//! the file source of `run --source file:`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::kubectl_dump::{self, Format};
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::source::file;

fn check(dump: &ClusterDump, services: usize, what: &str) {
    assert!(dump.bad.is_empty(), "{what}: {:?}", dump.bad.first());
    assert_eq!(dump.services.len(), services, "{what}");
    assert_eq!(dump.slices.len(), services, "{what}");
    let endpoints: usize = dump.slices.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(endpoints, 4 * services, "{what}");
    // What the model never reads is gone already (kept, it doubles a large dump's memory).
    assert!(
        dump.slices
            .iter()
            .all(|s| s.metadata.owner_references.is_none()
                && s.endpoints.iter().all(|e| e.target_ref.is_none())),
        "{what}"
    );
}

/// `kubectl get svc,endpointslices -A -o yaml` of 3,400 Services (the size reported to fail with
/// serde_saphyr's default budget of 250,000 nodes) loads through `plan`'s reader and through the
/// file source; the same as `-o json` through the JSON path.
#[test]
fn a_dump_of_thousands_of_services_loads_through_plan_and_the_file_source() {
    let yaml = kubectl_dump::text(3_400, 4, Format::Yaml);
    let mut dump = ClusterDump::default();
    dump.parse(&yaml, "dump.yaml").unwrap();
    check(&dump, 3_400, "yaml");

    let dir = std::env::temp_dir().join(format!("kube-ipvs-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let state = file::load(&path, "node-1");
    std::fs::remove_dir_all(&dir).unwrap();
    let state = state.unwrap();
    assert_eq!(state.services.len(), 3_400);
    assert_eq!(state.slices.len(), 3_400);
    assert!(state.invalid.is_empty());

    let json = kubectl_dump::text(1_000, 4, Format::Json);
    let mut dump = ClusterDump::default();
    dump.parse(&json, "dump.json").unwrap();
    check(&dump, 1_000, "json");
}
