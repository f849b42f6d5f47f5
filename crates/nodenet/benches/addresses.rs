//! Binding many /32 addresses to one link: ours (pipelined rtnetlink) vs `ip -batch`, and
//! adding one local prefix route. Runs natively in a fresh network namespace it unshares
//! itself (root needed; the address path is the same for veth, bridge and dummy links).
//!
//! `cargo bench -p nodenet --bench addresses -- --addresses 20000`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: panics are the failure report

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lab_kit::cost::{Cost, UsageWho, measure};
use lab_kit::{enter_fresh_netns, process};
use nodenet::link::Links;

fn ip_batch(lines: &str) -> Cost {
    let path = std::env::temp_dir().join(format!("nodenet-bench-{}.batch", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let ((), cost) = measure(UsageWho::RUSAGE_CHILDREN, || {
        process::run("ip", &["-batch", path.to_str().unwrap()], None);
    });
    std::fs::remove_file(path).unwrap();
    cost
}

fn ratio(a: Cost, b: Cost) -> f64 {
    a.wall.as_secs_f64() / b.wall.as_secs_f64().max(1e-9)
}

fn main() {
    let mut n: u32 = 50_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--addresses" {
            n = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--addresses N");
        }
    }
    enter_fresh_netns();
    lab_kit::sh("ip link add bench0 type veth peer name bench1");

    let addrs: Vec<IpAddr> = (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a80_0001_u32 + i)))
        .collect();
    let wanted: BTreeSet<IpAddr> = addrs.iter().copied().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut links = rt
        .block_on(Links::connect(Duration::from_secs(30)))
        .unwrap();
    let ifindex = rt
        .block_on(links.link_index("bench0"))
        .unwrap()
        .expect("bench0");

    println!("binding {n} /32 addresses to one veth, fresh netns");
    let (changes, ours_add) = measure(UsageWho::RUSAGE_SELF, || {
        rt.block_on(links.sync_addresses(ifindex, &wanted)).unwrap()
    });
    assert_eq!(changes.added.len(), wanted.len());
    println!("  add    ours      {ours_add:.3}");
    let have = rt.block_on(links.addresses(ifindex)).unwrap();
    assert_eq!(have.len(), wanted.len(), "all addresses bound");
    let (changes, ours_del) = measure(UsageWho::RUSAGE_SELF, || {
        rt.block_on(links.sync_addresses(ifindex, &BTreeSet::new()))
            .unwrap()
    });
    assert_eq!(changes.removed.len(), wanted.len());
    println!("  remove ours      {ours_del:.3}");

    let add: String = addrs
        .iter()
        .map(|a| format!("address add {a}/32 dev bench0\n"))
        .collect();
    let del: String = addrs
        .iter()
        .map(|a| format!("address del {a}/32 dev bench0\n"))
        .collect();
    let ip_add = ip_batch(&add);
    println!("  add    ip -batch {ip_add:.3}");
    assert_eq!(
        rt.block_on(links.addresses(ifindex)).unwrap().len(),
        wanted.len()
    );
    let ip_del = ip_batch(&del);
    println!("  remove ip -batch {ip_del:.3}");
    assert!(rt.block_on(links.addresses(ifindex)).unwrap().is_empty());
    println!(
        "  ratio ours/ip -batch (wall): add {:.2}x, remove {:.2}x; user-space CPU: ours {:.3} s, ip {:.3} s",
        ratio(ours_add, ip_add),
        ratio(ours_del, ip_del),
        (ours_add.user + ours_del.user).as_secs_f64(),
        (ip_add.user + ip_del.user).as_secs_f64(),
    );

    // One local prefix route makes a whole service CIDR local.
    let lo = rt.block_on(links.link_index("lo")).unwrap().expect("lo");
    let prefix = "10.96.0.0/12".parse().unwrap();
    let rounds = 1000u32;
    let ((), route) = measure(UsageWho::RUSAGE_SELF, || {
        for _ in 0..rounds {
            rt.block_on(links.add_local_route(prefix, lo)).unwrap();
            assert!(rt.block_on(links.remove_local_route(prefix, lo)).unwrap());
        }
    });
    println!(
        "local route 10.96.0.0/12: add+remove {:.1} us per pair ({rounds} rounds)",
        route.wall.as_secs_f64() * 1e6 / f64::from(rounds)
    );
}
