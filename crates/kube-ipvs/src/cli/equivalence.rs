//! `plan --config C` prints exactly what `run --config C` programs: both parse the same flags
//! (this binary's CLI), load the configuration with `config::load` and derive the planner settings
//! with `Settings::derive`; `run` here drives the agent's sync loop on the fake kernel with the
//! file source, as `kube-ipvs run --source file:` does. Single-stack and dual-stack.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use kube_ipvs::agent::{NoopObserver, Settings, run_agent};
use kube_ipvs::config::{self, RunArgs, Source};
use kube_ipvs::kernel::FakeKernel;
use kube_ipvs::render::{TableRow, ipvsadm_table};
use kube_ipvs::source::{FileOptions, file};
use tokio::sync::oneshot;

use super::{Cli, Command};

const DUMP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cluster.yaml");

fn cli(args: &[&str]) -> Command {
    Cli::try_parse_from(std::iter::once("kube-ipvs").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

/// What `plan` prints, split into the IPVS table and the lines of the routes and addresses
/// sections.
fn plan(config: &str, node_addresses: &str) -> (String, BTreeSet<String>, BTreeSet<String>) {
    let Command::Plan(args) = cli(&[
        "plan",
        "-f",
        DUMP,
        "--config",
        config,
        "--hostname-override=node-a",
        "--no-owners",
        "--node-address",
        node_addresses,
    ]) else {
        panic!("not plan")
    };
    let text = super::plan::render(&args).unwrap();
    let (table, rest) = text.split_once("\nLocal routes").unwrap();
    let section = |title: &str| -> BTreeSet<String> {
        rest.split_once(title)
            .map(|(_, s)| s)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.trim().to_owned())
            .filter(|l| l != "(none)")
            .collect()
    };
    let routes = rest
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().trim_start_matches("local ").to_owned())
        .filter(|l| l != "(none)")
        .collect();
    (table.to_owned(), routes, section("Addresses bound to"))
}

/// What `run` programs on a fake kernel whose links carry `host`.
async fn run(config: &str, host: &[IpAddr]) -> (String, BTreeSet<String>, BTreeSet<String>) {
    let source = format!("--source=file:{DUMP}");
    let Command::Run(cmd) = cli(&[
        "run",
        "--config",
        config,
        "--hostname-override=node-a",
        &source,
    ]) else {
        panic!("not run")
    };
    let args: RunArgs = cmd.args;
    // What `daemon::run` does before it touches the kernel, with the fake kernel's addresses.
    let loaded = config::load(&args).unwrap();
    let cfg = &loaded.config;
    let node = cfg.node_name().unwrap();
    let settings = Settings::derive(cfg, &node.name, host.to_vec());
    let Source::File(path) = &cfg.source else {
        panic!("file source")
    };
    let kernel = FakeKernel::new();
    kernel.handle().node_addresses = host.to_vec();
    let mut opts = FileOptions::new(path, &node.name);
    opts.poll = Duration::from_millis(50);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_agent(
        kernel.clone(),
        file::start(opts),
        settings,
        Arc::new(NoopObserver),
        async move {
            let _ = stopped.await;
        },
    ));
    for _ in 0..500 {
        if kernel.handle().rule_writes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let h = kernel.handle();
    assert!(h.rule_writes > 0, "the agent synced");
    let mut table = String::new();
    ipvsadm_table(
        &mut table,
        h.state.virtual_servers().iter().map(|(key, v)| TableRow {
            key,
            spec: &v.spec,
            reals: &v.reals,
            owner: None,
        }),
    );
    let routes = h.state.routes().iter().map(ToString::to_string).collect();
    let bound = h
        .state
        .bound()
        .iter()
        .map(|a| format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 }))
        .collect();
    (table, routes, bound)
}

fn config_file(name: &str, body: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "kube-ipvs-equivalence-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
             mode: ipvs\n{body}"
        ),
    )
    .unwrap();
    path
}

async fn equivalent(name: &str, body: &str, host: &[&str]) -> String {
    let config = config_file(name, body);
    let config_str = config.to_str().unwrap();
    let host: Vec<IpAddr> = host.iter().map(|a| a.parse().unwrap()).collect();
    let node_addresses: Vec<String> = host.iter().map(ToString::to_string).collect();
    let planned = plan(config_str, &node_addresses.join(","));
    let programmed = run(config_str, &host).await;
    std::fs::remove_file(&config).unwrap();
    assert_eq!(planned.0, programmed.0, "IPVS table ({name})");
    assert_eq!(planned.1, programmed.1, "local routes ({name})");
    assert_eq!(planned.2, programmed.2, "bound addresses ({name})");
    planned.0
}

#[tokio::test]
async fn plan_prints_the_table_run_programs_single_stack() {
    let table = equivalent(
        "v4",
        "clusterCIDR: 10.244.0.0/16\nipvs: {scheduler: wlc, excludeCIDRs: [10.100.0.0/16]}\n",
        &["192.168.1.10"],
    )
    .await;
    // An IPv4-only node: the dump's IPv6 Service is not programmed (plan used to print it).
    assert!(table.contains("TCP  10.96.40.1:80 wlc"), "{table}");
    assert!(!table.contains("[fd00"), "{table}");
}

#[tokio::test]
async fn plan_prints_the_table_run_programs_dual_stack() {
    let table = equivalent(
        "dual",
        "clusterCIDR: 10.244.0.0/16,fd00:244::/56\nipvs: {scheduler: rr}\n\
         nodePortAddresses: [192.168.1.0/24]\n",
        &["192.168.1.10", "fd00:1::10"],
    )
    .await;
    assert!(table.contains("TCP  [fd00:10:96::40]:80 rr"), "{table}");
    assert!(table.contains("TCP  192.168.1.10:30080 rr"), "{table}");
}
