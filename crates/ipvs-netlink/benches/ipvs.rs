//! IPVS programming and observation: ipvs-netlink vs `ipvsadm -R` / `ipvsadm -Ln`, same rule
//! set, same (fresh) network namespace, one run. Run in the lab: `cargo xtask bench ipvs`
//! (`-- --services N --window W --ack every|last`).
//!
//! Inside the emulated lab only the ratios mean anything. Every phase reports its wall time and the
//! CPU time it cost, split into user space and kernel (sys): ours from `getrusage(RUSAGE_SELF)`
//! (the bench is one thread), `ipvsadm`'s from `RUSAGE_CHILDREN` around the child.
// A benchmark binary: any failure must abort the run loudly.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use ipvs_netlink::{
    Client, ClientOptions, Destination, IpvsOp, SchedulerName, Service, VirtualServiceKey,
};
use lab_kit::cost::{Cost, Stopwatch, UsageWho, measure};
use lab_kit::enter_fresh_netns;
use lab_kit::process;

struct Args {
    services: u32,
    window: usize,
    ack_every_op: bool,
    netlink_table: bool,
}

fn args() -> Args {
    let mut a = Args {
        services: 50_000,
        window: 1024,
        ack_every_op: true,
        netlink_table: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--services" => a.services = val().parse().expect("--services N"),
            "--window" => a.window = val().parse().expect("--window N"),
            "--ack" => a.ack_every_op = val() == "every",
            "--no-netlink-table" => a.netlink_table = false,
            // cargo bench passes --bench; ignore what we do not know.
            _ => {}
        }
    }
    a
}

fn vip(i: u32) -> IpAddr {
    let [_, a, b, c] = i.to_be_bytes();
    IpAddr::from([10, 96 + a, b, c])
}

fn backend(i: u32, n: u8) -> IpAddr {
    let [_, a, b, c] = i.to_be_bytes();
    IpAddr::from([10, 128 + a * 2 + n, b, c])
}

fn rule_set(n: u32) -> Vec<IpvsOp> {
    let mut ops = Vec::with_capacity(usize::try_from(n).unwrap() * 3);
    for i in 0..n {
        let key = VirtualServiceKey::tcp(vip(i), 80);
        ops.push(IpvsOp::AddService(Service::new(key, SchedulerName::rr())));
        ops.push(IpvsOp::AddDestination(
            key,
            Destination::masq(backend(i, 0), 8080, 1),
        ));
        ops.push(IpvsOp::AddDestination(
            key,
            Destination::masq(backend(i, 1), 8080, 1),
        ));
    }
    ops
}

fn restore_text(n: u32) -> String {
    let mut s = String::with_capacity(usize::try_from(n).unwrap() * 120);
    for i in 0..n {
        let v = vip(i);
        s.push_str(&format!("-A -t {v}:80 -s rr\n"));
        s.push_str(&format!("-a -t {v}:80 -r {}:8080 -m -w 1\n", backend(i, 0)));
        s.push_str(&format!("-a -t {v}:80 -r {}:8080 -m -w 1\n", backend(i, 1)));
    }
    s
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn rate(ops: usize, d: Duration) -> f64 {
    f64::from(u32::try_from(ops).unwrap_or(u32::MAX)) / d.as_secs_f64().max(1e-9)
}

fn ipvsadm(args: &[&str], stdin: Option<&str>) -> (Cost, String) {
    let (out, took) = measure(UsageWho::RUSAGE_CHILDREN, || {
        process::run("ipvsadm", args, stdin)
    });
    (took, out)
}

fn main() {
    let a = args();
    // A fresh namespace for this thread (and the ipvsadm children it spawns), lo up (without
    // it the kernel refuses IPv4 destinations with EINVAL).
    enter_fresh_netns();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(a));
}

/// The full observation the agent's repair makes (kube-ipvs `kernel/netlink/observe.rs`): every
/// service with its destinations over netlink, each message converted as it arrives. Returns
/// (services, destinations) seen.
async fn agent_observation(c: &mut Client) -> (usize, usize) {
    let mut keys = Vec::new();
    c.visit_services(|s| keys.push(s.key))
        .await
        .expect("list services");
    let mut dests = 0;
    for key in &keys {
        dests += c
            .list_destinations(key)
            .await
            .expect("list destinations")
            .len();
        tokio::task::yield_now().await;
    }
    (keys.len(), dests)
}

async fn run(a: Args) {
    let n = a.services;
    let ops = rule_set(n);
    let total_ops = ops.len();
    let opts = ClientOptions {
        window: a.window,
        ack_every_op: a.ack_every_op,
        timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    let mut c = Client::with_options(opts)
        .await
        .expect("connect: is ip_vs loaded?");
    println!(
        "ipvs bench: {n} TCP services x 2 masq destinations = {total_ops} ops; window {}, ack {}",
        a.window,
        if a.ack_every_op {
            "every op"
        } else {
            "last op per datagram"
        }
    );
    let n_services = usize::try_from(n).unwrap();

    // 1. Program through apply.
    let done = Stopwatch::start(UsageWho::RUSAGE_SELF);
    let results = c.apply(&ops).await;
    let ours_prog = done.stop();
    println!("  apply done in {:.2} s", secs(ours_prog.wall));
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e}");
    }
    assert_eq!(failed, 0, "{failed} ops failed");

    // 2. Observe the whole table: the agent's path, the /proc fast path, the complete table.
    let done = Stopwatch::start(UsageWho::RUSAGE_SELF);
    let seen = agent_observation(&mut c).await;
    let ours_agent = done.stop();
    println!(
        "  agent's observation done in {:.2} s",
        secs(ours_agent.wall)
    );
    assert_eq!(seen, (n_services, 2 * n_services));
    let done = Stopwatch::start(UsageWho::RUSAGE_SELF);
    let snap = c.snapshot().await.expect("snapshot");
    let ours_snap = done.stop();
    println!("  snapshot done in {:.2} s", secs(ours_snap.wall));
    assert_eq!(snap.services.len(), n_services);
    assert!(
        snap.services
            .iter()
            .all(|s| s.destinations.len() == 2 && s.destinations.iter().all(|d| d.weight == 1))
    );
    let ours_table = if a.netlink_table {
        let done = Stopwatch::start(UsageWho::RUSAGE_SELF);
        let table = c.table().await.expect("table");
        let took = done.stop();
        println!("  netlink table done in {:.2} s", secs(took.wall));
        assert_eq!(table.services.len(), n_services);
        assert!(table.services.values().all(|s| s.destinations.len() == 2));
        Some(took)
    } else {
        None
    };
    let done = Stopwatch::start(UsageWho::RUSAGE_SELF);
    c.flush().await.expect("flush");
    let ours_flush = done.stop();
    assert!(c.list_services().await.unwrap().is_empty());

    // 3. The same with ipvsadm.
    let text = restore_text(n);
    let (ipvsadm_prog, _) = ipvsadm(&["-R"], Some(&text));
    println!("  ipvsadm -R done in {:.2} s", secs(ipvsadm_prog.wall));
    let (ipvsadm_list, listing) = ipvsadm(&["-Ln"], None);
    println!("  ipvsadm -Ln done in {:.2} s", secs(ipvsadm_list.wall));
    let dest_lines = listing
        .lines()
        .filter(|l| l.trim_start().starts_with("->"))
        .count();
    assert_eq!(
        dest_lines,
        n_services * 2 + 1,
        "ipvsadm -Ln saw a different table"
    );
    let (ipvsadm_flush, _) = ipvsadm(&["-C"], None);

    let ours_rate = rate(total_ops, ours_prog.wall);
    let theirs_rate = rate(total_ops, ipvsadm_prog.wall);
    let prog_ratio = ours_rate / theirs_rate;
    let obs = |c: &Cost| secs(c.wall) / secs(ipvsadm_list.wall);
    println!("programming  ipvs-netlink apply : {ours_prog}  {ours_rate:>9.0} ops/s");
    println!("programming  ipvsadm -R         : {ipvsadm_prog}  {theirs_rate:>9.0} ops/s");
    println!(
        "observation  agent's (netlink)  : {ours_agent}  {:.3}x ipvsadm -Ln",
        obs(&ours_agent)
    );
    println!(
        "observation  snapshot (/proc)   : {ours_snap}  {:.3}x ipvsadm -Ln",
        obs(&ours_snap)
    );
    if let Some(t) = ours_table {
        println!(
            "observation  table (netlink)    : {t}  {:.3}x ipvsadm -Ln",
            obs(&t)
        );
    }
    println!("observation  ipvsadm -Ln        : {ipvsadm_list}");
    println!("flush        ours               : {ours_flush}");
    println!("flush        ipvsadm -C         : {ipvsadm_flush}");
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    println!(
        "ratio programming (ours ops/s / ipvsadm ops/s): {prog_ratio:.2}  target >= 20.00  {}",
        verdict(prog_ratio >= 20.0)
    );
    let obs_ratio = obs(&ours_agent);
    println!(
        "ratio observation, the agent's path (ours time / ipvsadm -Ln time): {obs_ratio:.3}  target <= 0.100  {}",
        verdict(obs_ratio <= 0.1)
    );
}
