//! Kernel tests of the apply layer: `NetlinkKernel` against a real IPVS, each test in a fresh
//! network namespace of its own. They need the lab (`cargo xtask test -p kube-ipvs`) and fail
//! loudly without IPVS or root.
//!
//! Nothing here reads `/proc/net/ip_vs` (every dump is netlink, which is netns-safe), so the tests
//! need no serialization; `ipvsadm -Ln` (used for cross-checks) dumps over netlink too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kube_ipvs::dump::ClusterDump;
use kube_ipvs::kernel::{Kernel, KernelConfig, NetlinkKernel, ReadScope};
use kube_ipvs::plan::Op;
use kube_ipvs::types::{
    Family, IpsetEntry, IpsetName, Proto, RealServer, Scheduler, ServiceName, ServicePortName,
    SetKind, VsKey, VsSpec,
};
use kube_ipvs::{Engine, PlannerConfig};
use lab_kit::{enter_fresh_netns, ipvsadm_lines, sh};

const NODE: &str = "node-a";
const DEVICE: &str = "kube-ipvs0";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn planner_config() -> PlannerConfig {
    let mut cfg = PlannerConfig::new(NODE);
    cfg.node_addresses = vec![ip("192.168.1.10"), ip("fd00:1::10")];
    cfg
}

/// An engine fed with `examples/cluster.yaml`, as `kube-ipvs plan` feeds it.
fn cluster_engine() -> Engine {
    let mut dump = ClusterDump::default();
    dump.read_file(&root().join("examples/cluster.yaml"))
        .unwrap();
    let mut e = Engine::new(planner_config());
    assert!(dump.node(NODE).is_some(), "node-a in the example");
    e.load(&dump);
    e
}

async fn connect() -> NetlinkKernel {
    NetlinkKernel::connect(KernelConfig::new(DEVICE, &Family::ALL))
        .await
        .expect("connect: is ip_vs loaded, are we root?")
}

/// Observes, plans in full, applies; returns the plan. Panics on any failed op.
async fn sync(kernel: &mut NetlinkKernel, engine: &mut Engine) -> Vec<Op> {
    engine.set_observed(kernel.observe().await.expect("observe"));
    let ops = engine.plan_full(Duration::ZERO);
    let out = kernel.apply(&ops).await;
    let failures: Vec<String> = out
        .failures(&ops)
        .map(|(op, e)| format!("{op}: {e}"))
        .collect();
    assert!(failures.is_empty(), "failed ops:\n{}", failures.join("\n"));
    ops
}

/// A fresh namespace, prepared, with the example cluster applied.
async fn programmed() -> (NetlinkKernel, Engine, Vec<Op>) {
    enter_fresh_netns();
    let t = std::time::Instant::now();
    let mut kernel = connect().await;
    kernel.prepare().await.expect("prepare");
    let prepared = t.elapsed();
    let mut engine = cluster_engine();
    let t = std::time::Instant::now();
    let ops = sync(&mut kernel, &mut engine).await;
    eprintln!(
        "prepare {prepared:?}; observe + plan + apply of {} ops {:?}",
        ops.len(),
        t.elapsed()
    );
    (kernel, engine, ops)
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn full_plan_applies_and_a_second_plan_is_empty() {
    let (mut kernel, mut engine, ops) = programmed().await;
    assert!(ops.len() > 50, "the example plans {} ops", ops.len());
    engine.set_observed(kernel.observe().await.unwrap());
    let again = engine.plan_full(Duration::ZERO);
    assert!(again.is_empty(), "second plan: {again:#?}");

    // What other tools see.
    let table = ipvsadm_lines("-Ln");
    for want in [
        "TCP 10.96.0.1:443 rr",
        "-> 192.168.1.10:6443 Masq 1 0 0",
        "TCP 10.96.20.2:6379 sh (sh-fallback,sh-port)",
        "TCP 10.96.10.10:80 rr persistent 600",
        "UDP 10.96.0.10:53 rr",
        "TCP [fd00:10:96::40]:80 rr",
        "-> [fd00:244:1::10]:8080 Masq 1 0 0",
        "TCP 192.168.1.10:30080 rr persistent 600",
    ] {
        assert!(
            table.iter().any(|l| l == want),
            "{want:?} not in {table:#?}"
        );
    }
    let addrs = sh(&format!("ip -o addr show dev {DEVICE}"));
    for a in ["10.100.0.5/32", "198.51.100.20/32", "203.0.113.10/32"] {
        assert!(addrs.contains(a), "{a} not in {addrs}");
    }
    let routes =
        sh("ip route show table local type local; ip -6 route show table local type local");
    assert!(
        routes.contains("local 10.96.0.0/16 dev lo proto static"),
        "{routes}"
    );
    assert!(
        routes.contains("local fd00:10:96::/112 dev lo proto static"),
        "{routes}"
    );
    let sets: BTreeSet<String> = sh("ipset list -n").lines().map(str::to_owned).collect();
    assert_eq!(sets.len(), 34, "{sets:?}");
    let cluster_ip = sh("ipset list KUBE-CLUSTER-IP");
    assert!(cluster_ip.contains("10.96.0.10,udp:53"), "{cluster_ip}");
    assert!(sh("ip -d link show kube-ipvs0").contains("dummy"));

    // prepare again: nothing lost, nothing to plan.
    kernel.prepare().await.expect("second prepare");
    engine.set_observed(kernel.observe().await.unwrap());
    assert!(engine.plan_full(Duration::ZERO).is_empty());
    assert_eq!(sh("sysctl -n net.ipv4.vs.conntrack").trim(), "1");
    assert_eq!(sh("sysctl -n net.ipv4.vs.expire_nodest_conn").trim(), "1");

    // Counters of the virtual servers asked for (every one, and one that does not exist): one
    // per real server, all idle.
    let observed = kernel.observe().await.unwrap();
    let mut of: Vec<_> = observed.virtual_servers().keys().copied().collect();
    let reals: usize = observed
        .virtual_servers()
        .values()
        .map(|v| v.reals.len())
        .sum();
    of.push(kube_ipvs::types::VsKey::Fwmark {
        family: kube_ipvs::types::Family::V4,
        mark: 0x7777,
    });
    let missing = *of.last().unwrap();
    let read = kernel
        .read(ReadScope {
            vs: of,
            table: false,
        })
        .await;
    let read = kernel.adopt_read(read).unwrap();
    assert!(read.table.is_none());
    let seen: Vec<_> = read
        .vs
        .iter()
        .flat_map(|(_, r)| r.iter().flatten())
        .collect();
    assert_eq!(seen.len(), reals);
    assert!(seen.iter().all(|r| r.active == 0 && r.inactive == 0));
    assert!(read.vs.iter().any(|(k, r)| *k == missing && r.is_none()));
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn a_restarted_agent_adopts_the_kernel_with_zero_ops() {
    let (kernel, _engine, _) = programmed().await;
    let before = ipvsadm_lines("-Ln");
    drop(kernel);
    let mut restarted = connect().await;
    restarted.prepare().await.unwrap();
    let mut engine = cluster_engine();
    engine.set_observed(restarted.observe().await.unwrap());
    let ops = engine.plan_full(Duration::ZERO);
    assert!(ops.is_empty(), "after restart: {ops:#?}");
    assert_eq!(ipvsadm_lines("-Ln"), before);
}

fn owner() -> ServicePortName {
    ServicePortName {
        service: ServiceName::new("test", "svc"),
        port: "".into(),
    }
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn failures_map_to_their_op_and_the_rest_apply() {
    enter_fresh_netns();
    let mut kernel = connect().await;
    kernel.prepare().await.unwrap();
    sh("ipvsadm -A -t 10.1.0.9:80 -s wlc");
    sh("ip addr add 10.1.0.2/32 dev kube-ipvs0");
    let a = VsKey::new(Proto::Tcp, ip("10.1.0.1"), 80);
    let missing = VsKey::new(Proto::Tcp, ip("10.1.0.99"), 80);
    let existing = VsKey::new(Proto::Tcp, ip("10.1.0.9"), 80);
    let rr = VsSpec::plain(Scheduler::Rr, Family::V4);
    let set = IpsetName::new(SetKind::ClusterIp, Family::V4);
    let bypass = RealServer {
        forward: kube_ipvs::types::Forward::Bypass,
        ..RealServer::masq(ip("10.244.0.3"), 80)
    };
    let ops = vec![
        // 0: fine
        Op::BindAddr {
            addr: ip("10.1.0.1"),
        },
        // 1: already bound: its effect is there, success
        Op::BindAddr {
            addr: ip("10.1.0.2"),
        },
        // 2: IPv6 member in an IPv4 set: refused by the kernel
        Op::IpsetAdd {
            set,
            entry: IpsetEntry::IpPort(ip("fd00::1"), Proto::Tcp, 80),
        },
        // 3: fine (same set, same batch as 2)
        Op::IpsetAdd {
            set,
            entry: IpsetEntry::IpPort(ip("10.1.0.1"), Proto::Tcp, 80),
        },
        // 4: fine
        Op::AddVs {
            key: a,
            spec: rr,
            owner: owner(),
        },
        // 5: exists with scheduler wlc: becomes an update to rr
        Op::AddVs {
            key: existing,
            spec: rr,
            owner: owner(),
        },
        // 6: no such virtual server
        Op::AddRs {
            vs: missing,
            rs: RealServer::masq(ip("10.244.0.1"), 80),
        },
        // 7: fine
        Op::AddRs {
            vs: a,
            rs: RealServer::masq(ip("10.244.0.2"), 8080),
        },
        // 8: Bypass cannot be programmed
        Op::AddRs { vs: a, rs: bypass },
        // 9: update of a missing virtual server
        Op::UpdateVs {
            key: missing,
            spec: rr,
        },
        // 10: deleting what is absent: success
        Op::DelVs { key: missing },
        // 11: fine
        Op::AddRs {
            vs: existing,
            rs: RealServer::masq(ip("10.244.0.4"), 80),
        },
    ];
    let out = kernel.apply(&ops).await;
    let failed: Vec<usize> = out.failed.iter().map(|(i, _)| *i).collect();
    let errors: Vec<String> = out
        .failed
        .iter()
        .map(|(i, e)| format!("{i}: {e}"))
        .collect();
    assert_eq!(failed, [2, 6, 8, 9], "{errors:#?}");
    assert_eq!(out.succeeded(&ops).count(), ops.len() - 4);

    let table = ipvsadm_lines("-Ln");
    for want in [
        "TCP 10.1.0.1:80 rr",
        "-> 10.244.0.2:8080 Masq 1 0 0",
        "TCP 10.1.0.9:80 rr",
        "-> 10.244.0.4:80 Masq 1 0 0",
    ] {
        assert!(
            table.iter().any(|l| l == want),
            "{want:?} not in {table:#?}"
        );
    }
    assert!(!table.iter().any(|l| l.contains("10.1.0.99")));
    let members = sh("ipset list KUBE-CLUSTER-IP");
    assert!(members.contains("10.1.0.1,tcp:80"), "{members}");
    let addrs = sh("ip -o addr show dev kube-ipvs0");
    assert!(addrs.contains("10.1.0.1/32") && addrs.contains("10.1.0.2/32"));
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn foreign_virtual_servers_survive_a_full_sync() {
    enter_fresh_netns();
    // keepalived / kube-vip style entries on addresses kube-ipvs does not own, and fwmark ones.
    sh("ipvsadm -A -t 192.0.2.50:80 -s wlc && ipvsadm -a -t 192.0.2.50:80 -r 10.9.9.9:80 -m -w 3");
    sh("ipvsadm -A -u [2001:db8::50]:53 -s rr");
    sh("ipvsadm -A -f 7 -s rr && ipvsadm -a -f 7 -r 10.9.9.8:0 -g");
    let foreign: Vec<String> = ipvsadm_lines("-Ln");
    let mut kernel = connect().await;
    kernel.prepare().await.unwrap();
    let observed = kernel.observe().await.unwrap();
    let fw = VsKey::Fwmark {
        family: Family::V4,
        mark: 7,
    };
    let web = VsKey::new(Proto::Tcp, ip("192.0.2.50"), 80);
    assert!(observed.virtual_server(&fw).is_some(), "fwmark observed");
    assert_eq!(
        observed.virtual_server(&web).unwrap().reals[0].weight,
        3,
        "foreign real servers observed"
    );

    let mut engine = cluster_engine();
    let ops = sync(&mut kernel, &mut engine).await;
    assert!(!ops.is_empty());
    let table = ipvsadm_lines("-Ln");
    for line in &foreign[3..] {
        assert!(table.contains(line), "foreign {line:?} gone: {table:#?}");
    }
    engine.set_observed(kernel.observe().await.unwrap());
    assert!(engine.plan_full(Duration::ZERO).is_empty());
}

fn kube_ipvs(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kube-ipvs"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn against_kernel_prints_the_ops_for_a_kernel_that_differs() {
    let (_kernel, _engine, _) = programmed().await;
    let base = [
        "plan",
        "-f",
        "examples/cluster.yaml",
        "--node",
        "node-a",
        "--node-address",
        "192.168.1.10,fd00:1::10",
        "--against-kernel",
    ];
    let out = kube_ipvs(&base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "in sync: no ops");

    // Drift: a real server gone, a stray virtual server in the service CIDR, a member gone.
    sh("ipvsadm -d -t 10.96.0.1:443 -r 192.168.1.10:6443");
    sh("ipvsadm -A -t 10.96.99.99:80 -s rr");
    sh("ipset del KUBE-CLUSTER-IP 10.96.0.10,udp:53");
    let out = kube_ipvs(&base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "ipset add KUBE-CLUSTER-IP 10.96.0.10,udp:53",
            "rs add TCP  10.96.0.1:443 -> 192.168.1.10:6443 w 1",
            "vs del TCP  10.96.99.99:80",
        ],
        "{text}"
    );
    let mut json_args = base.to_vec();
    json_args.push("--json");
    let out = kube_ipvs(&json_args);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops = v.as_array().expect("a JSON array of ops");
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[2]["op"], "delVs");
    // Read-only: nothing was changed by planning.
    assert!(
        ipvsadm_lines("-Ln")
            .iter()
            .any(|l| l == "TCP 10.96.99.99:80 rr")
    );
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn rules_are_written_when_their_inputs_change() {
    let (mut kernel, engine, _) = programmed().await;
    let inputs = engine.desired().iptables_inputs();
    assert!(kernel.sync_rules(&inputs).await.expect("first write"));
    let nat = sh("iptables-save -t nat");
    assert!(nat.contains("-A KUBE-SERVICES"), "{nat}");
    assert!(nat.contains("KUBE-CLUSTER-IP"), "{nat}");
    assert!(sh("ip6tables-save -t nat").contains("KUBE-SERVICES"));
    assert!(
        !kernel.sync_rules(&inputs).await.unwrap(),
        "unchanged inputs"
    );
    let mut fewer = inputs.clone();
    fewer.get_mut(&Family::V4).unwrap().non_empty_sets.clear();
    assert!(kernel.sync_rules(&fewer).await.unwrap(), "changed inputs");
    // A restarted agent finds its rules in place: nothing restored.
    let mut restarted = connect().await;
    assert!(!restarted.sync_rules(&fewer).await.unwrap());
    // Someone flushes a chain: the repair (prepare, its read, then rules) puts it back. The
    // check runs with the read, off the loop: prepare alone leaves sync_rules a no-op.
    sh("iptables -t nat -F KUBE-SERVICES");
    assert!(
        !restarted.sync_rules(&fewer).await.unwrap(),
        "inputs unchanged"
    );
    restarted.prepare().await.unwrap();
    assert!(!restarted.sync_rules(&fewer).await.unwrap(), "no read yet");
    restarted.observe().await.unwrap();
    assert!(restarted.sync_rules(&fewer).await.unwrap(), "repaired");
    assert!(sh("iptables-save -t nat").contains("-A KUBE-SERVICES"));
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn a_configured_namespace_is_used_for_everything() {
    enter_fresh_netns();
    let name = format!("kipvs-{}", std::process::id());
    sh(&format!(
        "ip netns add {name} && ip -n {name} link set lo up"
    ));
    let mut cfg = KernelConfig::new(DEVICE, &[Family::V4]);
    cfg.netns = Some(PathBuf::from(format!("/run/netns/{name}")));
    cfg.strict_arp = true;
    let mut kernel = NetlinkKernel::connect(cfg).await.unwrap();
    kernel.prepare().await.unwrap();
    let vs = VsKey::new(Proto::Tcp, ip("10.1.0.1"), 80);
    let ops = [
        Op::BindAddr {
            addr: ip("10.1.0.1"),
        },
        Op::AddVs {
            key: vs,
            spec: VsSpec::plain(Scheduler::Rr, Family::V4),
            owner: owner(),
        },
        Op::AddRs {
            vs,
            rs: RealServer::masq(ip("10.244.0.1"), 80),
        },
    ];
    assert!(kernel.apply(&ops).await.is_ok());
    let mut inputs = std::collections::BTreeMap::new();
    inputs.insert(Family::V4, Default::default());
    assert!(kernel.sync_rules(&inputs).await.unwrap());
    let inside = sh(&format!(
        "ip netns exec {name} sh -c 'ipvsadm -Ln; ip -o addr; ipset list -n; sysctl -n net.ipv4.conf.all.arp_ignore; iptables-save -t nat'"
    ));
    for want in [
        "10.1.0.1:80",
        "10.244.0.1:80",
        "10.1.0.1/32",
        "KUBE-CLUSTER-IP",
        "\n1\n",
        "KUBE-SERVICES",
    ] {
        assert!(inside.contains(want), "{want:?} not in {inside}");
    }
    // The test's own namespace stayed untouched.
    let here = sh("ipvsadm -Ln; ip -o link; ipset list -n; iptables-save -t nat");
    assert!(
        !here.contains("10.1.0.1") && !here.contains("kube-ipvs0") && !here.contains("KUBE-"),
        "{here}"
    );
    let observed = kernel.observe().await.unwrap();
    assert!(observed.virtual_server(&vs).is_some());
    assert!(observed.bound().contains(&ip("10.1.0.1")));
    drop(kernel);
    sh(&format!("ip netns del {name}"));
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn a_full_ipset_grows_in_place_and_keeps_its_members_and_references() {
    enter_fresh_netns();
    // A KUBE-CLUSTER-IP with room for 4 members (stock's is 65,536: ~33,000 two-port Services
    // fill it), referenced by an iptables rule as stock's is.
    sh(
        "ipset create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 64 maxelem 4 \
        && ipset add KUBE-CLUSTER-IP 10.96.0.9,tcp:80 \
        && iptables -w -A INPUT -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
    );
    let mut kernel = connect().await;
    kernel.prepare().await.unwrap();
    let set = IpsetName::new(SetKind::ClusterIp, Family::V4);
    let ops: Vec<Op> = (1..=10u16)
        .map(|p| Op::IpsetAdd {
            set,
            entry: IpsetEntry::IpPort(ip("10.96.0.1"), Proto::Tcp, p),
        })
        .collect();
    let outcome = kernel.apply(&ops).await;
    assert!(outcome.is_ok(), "{:?}", outcome.failed);
    let listed = sh("ipset list KUBE-CLUSTER-IP");
    assert_eq!(listed.matches("10.96.0.1,tcp:").count(), 10, "{listed}");
    assert!(listed.contains("10.96.0.9,tcp:80"), "{listed}");
    assert!(listed.contains("maxelem 1048576"), "{listed}");
    assert!(listed.contains("References: 1"), "{listed}");
}

/// The ops of two Services, A (`10.1.0.1`) and B (`10.1.0.2`), on one subsystem each call.
fn two_services(subsystem: &str) -> Vec<Op> {
    let rr = VsSpec::plain(Scheduler::Rr, Family::V4);
    let (a, b) = (ip("10.1.0.1"), ip("10.1.0.2"));
    let vs = |addr| VsKey::new(Proto::Tcp, addr, 80);
    match subsystem {
        "ipvs" => [a, b]
            .into_iter()
            .flat_map(|addr| {
                [
                    Op::AddVs {
                        key: vs(addr),
                        spec: rr,
                        owner: owner(),
                    },
                    Op::AddRs {
                        vs: vs(addr),
                        rs: RealServer::masq(ip("10.244.0.1"), 8080),
                    },
                ]
            })
            .collect(),
        "link" => vec![Op::BindAddr { addr: a }, Op::BindAddr { addr: b }],
        _ => vec![
            Op::IpsetAdd {
                set: IpsetName::new(SetKind::ClusterIp, Family::V4),
                entry: IpsetEntry::IpPort(a, Proto::Tcp, 80),
            },
            Op::IpsetAdd {
                set: IpsetName::new(SetKind::ExternalIp, Family::V4),
                entry: IpsetEntry::IpPort(b, Proto::Tcp, 80),
            },
        ],
    }
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn a_lost_reply_fails_only_its_op_the_socket_is_rebuilt_and_the_retry_programs_it() {
    use kube_ipvs::kernel::KernelError;
    use netlink_transport::{Error as TransportError, Failure, Fault, Faults, Match};

    enter_fresh_netns();
    let faults = Faults::new();
    let mut cfg = KernelConfig::new(DEVICE, &[Family::V4]);
    cfg.request_timeout = Duration::from_secs(2);
    cfg.faults = Some(faults.clone());
    let mut kernel = NetlinkKernel::connect(cfg).await.unwrap();
    kernel.prepare().await.unwrap();
    // Service B's first request of each subsystem: its answer never comes, or the receive buffer
    // overflows from it on (IPVS: B's AddVs and AddRs lose their answers).
    let b = vec![10, 1, 0, 2];
    for (subsystem, fault, lost) in [
        ("ipvs", Fault::NoReply, &[2][..]),
        ("ipvs", Fault::Overflow, &[2, 3][..]),
        ("link", Fault::NoReply, &[1][..]),
        ("ipset", Fault::NoReply, &[1][..]),
    ] {
        let opened = faults.opened();
        let ops = two_services(subsystem);
        faults.inject(Match::Containing(b.clone()), fault);
        let out = kernel.apply(&ops).await;
        let failed: Vec<usize> = out.failed.iter().map(|(i, _)| *i).collect();
        assert_eq!(failed, lost, "{subsystem} {fault:?}: {:?}", out.failed);
        for (_, e) in &out.failed {
            let KernelError::Request {
                failure: Failure::Lost(cause),
                ..
            } = e
            else {
                panic!("{subsystem}: not a lost answer: {e}");
            };
            match fault {
                Fault::NoReply => assert!(matches!(cause, TransportError::Timeout(_)), "{e}"),
                Fault::Overflow => assert!(matches!(cause, TransportError::RepliesLost), "{e}"),
            }
        }
        assert_eq!(faults.armed(), 0, "{subsystem}: the fault fired");
        // What the agent does next sync: retry the failed ops (their effects are there already,
        // which counts as done), on a rebuilt socket after a timeout.
        let retry: Vec<Op> = out.failures(&ops).map(|(op, _)| op.clone()).collect();
        let again = kernel.apply(&retry).await;
        assert!(again.is_ok(), "{subsystem} retry: {:?}", again.failed);
        if fault == Fault::NoReply {
            assert_eq!(faults.opened(), opened + 1, "{subsystem}: rebuilt once");
        }
    }
    // Both Services are programmed, on every subsystem.
    let table = ipvsadm_lines("-Ln");
    for want in ["TCP 10.1.0.1:80 rr", "TCP 10.1.0.2:80 rr"] {
        assert!(table.iter().any(|l| l == want), "{want} in {table:#?}");
    }
    assert_eq!(
        table
            .iter()
            .filter(|l| l.contains("10.244.0.1:8080"))
            .count(),
        2
    );
    let addrs = sh("ip -o addr show dev kube-ipvs0");
    assert!(
        addrs.contains("10.1.0.1/32") && addrs.contains("10.1.0.2/32"),
        "{addrs}"
    );
    assert!(sh("ipset list KUBE-CLUSTER-IP").contains("10.1.0.1,tcp:80"));
    assert!(sh("ipset list KUBE-EXTERNAL-IP").contains("10.1.0.2,tcp:80"));
}

/// `--ipvs-rate-estimation`: unset, `prepare` leaves `net.ipv4.vs.run_estimation` as it is (as
/// stock does); false turns the estimator off, true back on; the virtual servers stay.
#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn the_rate_estimator_is_switched_only_when_asked() {
    enter_fresh_netns();
    let estimation = || sh("sysctl -n net.ipv4.vs.run_estimation").trim().to_owned();
    let mut kernel = connect().await;
    kernel.prepare().await.unwrap();
    sh("ipvsadm -A -t 10.96.0.1:80");
    assert_eq!(estimation(), "1", "the kernel's default, untouched");
    sh("sysctl -qw net.ipv4.vs.run_estimation=0");
    kernel.prepare().await.unwrap();
    assert_eq!(estimation(), "0", "unset: someone else's choice is kept");
    for (want, value) in [(true, "1"), (false, "0")] {
        let mut cfg = KernelConfig::new(DEVICE, &Family::ALL);
        cfg.run_estimation = Some(want);
        let mut kernel = NetlinkKernel::connect(cfg).await.unwrap();
        kernel.prepare().await.unwrap();
        assert_eq!(estimation(), value);
    }
    assert_eq!(ipvsadm_lines("-Ln").len(), 4, "{:?}", ipvsadm_lines("-Ln"));
}
