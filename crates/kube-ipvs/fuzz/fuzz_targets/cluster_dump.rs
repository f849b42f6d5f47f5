//! A cluster dump (YAML or JSON, objects or Lists) -> objects, then through the model and the
//! planner as `kube-ipvs plan` runs them: the index, the desired state, a plan against an empty
//! kernel, and the report. Never panics; planning again after applying the plan yields no op.
#![no_main]

use std::time::Duration;

use kube_ipvs::dump::ClusterDump;
use kube_ipvs::render::{PlanReport, plan_text};
use kube_ipvs::{Engine, PlannerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut dump = ClusterDump::default();
    if dump.parse(text, "fuzz").is_err() {
        return;
    }
    let mut cfg = PlannerConfig::new("node-a");
    cfg.service_cidrs = vec!["10.96.0.0/16".parse().expect("cidr")];
    let mut engine = Engine::new(cfg);
    engine.load(&dump);
    let ops = engine.plan_full(Duration::ZERO);
    engine
        .commit(&ops)
        .expect("a plan applies to the state it was made against");
    let again = engine.plan_full(Duration::ZERO);
    assert!(again.is_empty(), "second plan: {again:?}");
    let report = PlanReport::new(engine.desired(), engine.index(), Default::default());
    let out = plan_text(&report, true);
    // No input forges a line: every virtual server line is followed only by real servers.
    assert!(out.lines().all(|l| !l.contains('\r')));
});
