//! Lab tests of `kube-ipvs list` and `kube-ipvs cleanup` against real IPVS, each in a fresh
//! network namespace: the built binary is compared live with `ipvsadm` in the same run, and
//! cleanup is checked against the node state a real `kube-ipvs run` programmed. They need the lab
//! (`cargo xtask test -p kube-ipvs`) and fail loudly without IPVS.
// Test code: helpers outside #[test] fns may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::UdpSocket;
use std::process::Command;

use kube_ipvs::PlannerConfig;
use kube_ipvs::dump::ClusterDump;
use kube_ipvs::owners::Owners;
use kube_ipvs::types::{Proto, VsKey};
use lab_kit::{enter_fresh_netns, sh, sh_output};

const BIN: &str = env!("CARGO_BIN_EXE_kube-ipvs");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn kube_ipvs(args: &str) -> String {
    sh(&format!("{BIN} {args}"))
}

/// The table of `tests/fixtures/ipvsadm-1.31/cases.sh` (its build commands, not its listings),
/// plus more: every forwarding method and tunnel type, services whose addresses make
/// libipvs's comparator cyclic (so the kernel's dump order matters), fwmark real servers,
/// IPv6 throughout.
fn build_table() {
    let cases =
        std::fs::read_to_string(format!("{ROOT}/tests/fixtures/ipvsadm-1.31/cases.sh")).unwrap();
    let fixture: Vec<&str> = cases
        .lines()
        .filter_map(|l| l.strip_prefix("ipvsadm "))
        .filter(|l| l.starts_with("-A") || l.starts_with("-a"))
        .collect();
    assert!(fixture.len() >= 18, "{cases}");
    let more = "\
-a -t 10.96.0.1:443 -r 10.0.0.3:443 -i --tun-type gue --tun-port 6080 --tun-csum -w 2
-a -t 10.96.0.1:443 -r 10.0.0.4:443 -i --tun-type gre --tun-nocsum -w 3
-a -t 10.96.0.1:443 -r 10.0.0.5:443 -i --tun-type gue --tun-port 5555 --tun-remcsum
-a -t 10.96.0.1:443 -r 127.0.0.1:443 -g
-A -t 100.64.0.1:80 -s rr
-A -t 172.16.0.1:80 -s wrr -p 5
-A -t 192.0.2.1:80 -s dh
-A -u 192.0.2.1:5353 -s lblc
-A -t 1.2.3.4:1 -s lblcr
-A -t 250.0.0.1:8080 -s fo
-A -t 130.0.0.1:80 -s ovf
-a -t 130.0.0.1:80 -r 10.1.0.1:80 -m -x 5 -y 2
-a -t 130.0.0.1:80 -r 200.1.0.1:80 -m
-a -t 130.0.0.1:80 -r 100.1.0.1:81 -m
-a -t 130.0.0.1:80 -r 100.1.0.1:80 -m
-A -u [2001:db8::1]:80 -s lblc -p 20 -M 48 -o
-a -u [2001:db8::1]:80 -r [2001:db8:1::2]:80 -m -w 7
-a -u [2001:db8::1]:80 -r [2001:db8:1::1]:8080 -m -w 0
-A --sctp-service [fd00::2]:3868 -s rr
-a -f 43 -6 -r [fd00::5]:0 -g
-A -f 7 -s sh -b sh-port
-a -f 7 -r 10.244.7.1:0 -i
-A -t 10.96.0.99:80 -s rr -b flag-1,flag-3
-A -u 10.96.0.60:9 -s rr
-a -u 10.96.0.60:9 -r 10.244.60.1:9 -m
";
    let rules = format!("{}\n{more}", fixture.join("\n"));
    restore(&rules);
    sh("ip addr add 10.96.0.60/32 dev lo");
}

/// `ipvsadm -R` (one process: the lab's emulated CPU makes each process start costly).
fn restore(rules: &str) {
    lab_kit::process::run("ipvsadm", &["-R"], Some(rules));
}

/// Datagrams through a virtual server, so counters and rates are not all zero.
fn traffic() {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    let payload = [7u8; 1000];
    for _ in 0..300 {
        // Local output to a local address passes IPVS's LOCAL_IN hook; the real server does
        // not exist, which does not matter for the in-counters.
        let _ = sock.send_to(&payload, "10.96.0.60:9");
    }
}

/// `kube-ipvs list ARGS` read between two `ipvsadm -Ln ARGS`. Rate estimators update every 2 s
/// and under emulation one process start can take longer, so ours may match either neighbour;
/// when both neighbours agree and ours does not, the difference is ours.
fn compare(args: &str) {
    let mut before = sh(&format!("ipvsadm -Ln {args}"));
    for _ in 0..20 {
        let ours = kube_ipvs(&format!("list {args}"));
        let after = sh(&format!("ipvsadm -Ln {args}"));
        if ours == before || ours == after {
            return;
        }
        assert_ne!(
            after, before,
            "kube-ipvs list {args} differs from ipvsadm -Ln {args}:\n{ours}"
        );
        before = after;
    }
    panic!("ipvsadm -Ln {args} changed around each of 20 reads of ours");
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn list_is_byte_identical_to_ipvsadm() {
    enter_fresh_netns();
    build_table();
    traffic();
    let n = sh("ipvsadm -Ln | grep -c -E '^(TCP|UDP|SCTP|FWM)'");
    assert_eq!(n.trim(), "22");
    // Counters are really non-zero, so --stats compares numbers, not only zeros. The kernel
    // folds its per-CPU counters into what it reports on the rate estimator's 2 s timer, which
    // under emulation and a loaded host can come later than our first read: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let counted = sh("ipvsadm -Ln --stats --exact -u 10.96.0.60:9");
        let line = counted.lines().find(|l| l.starts_with("UDP")).unwrap();
        if line.split_whitespace().skip(2).any(|c| c != "0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no traffic counted after 30 s:\n{counted}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    for args in [
        "",
        "--stats",
        "--rate",
        "--exact",
        "--stats --exact",
        "--rate --exact",
        "--persistent-conn",
        "--thresholds",
        "--tun-info",
        "--sort",
        "--timeout",
        "-t 10.96.0.1:443",
        "-t 10.96.0.1:443 --tun-info",
        "-u [2001:db8::1]:80 --stats",
        "-u 10.96.0.60:9 --stats --exact",
        "--sctp-service 10.96.0.13:9000",
        "--sctp-service [fd00::2]:3868",
        "-f 42",
        "-f 43 -6",
        "-f 7 --persistent-conn",
    ] {
        compare(args);
    }
    // -n is implied (ipvsadm refuses it twice, so compare with one).
    assert_eq!(kube_ipvs("list -n"), sh("ipvsadm -Ln"));
    // After a timeout change, too.
    sh("ipvsadm --set 7200 60 120");
    compare("--timeout");
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn a_missing_service_is_an_error_and_json_lists_the_same_table() {
    enter_fresh_netns();
    restore(
        "-A -t 203.0.113.254:65535 -s sed\n-A -t 10.96.0.1:443 -s rr\n-a -t 10.96.0.1:443 -r 10.0.0.1:6443 -m\n-A -f 43 -6 -s rr\n-A -u [fd00::1]:53 -s rr\n",
    );
    let out = sh_output(&format!("{BIN} list -t 10.9.9.9:1"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service: TCP  10.9.9.9:1"));
    let json: serde_json::Value = serde_json::from_str(&kube_ipvs("list --json --stats")).unwrap();
    let names: Vec<String> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let text_names: Vec<String> = sh("ipvsadm -Ln --stats")
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("IP ") && !l.starts_with("Prot"))
        .map(|l| l.get(..33).unwrap_or(l).trim_end().to_string())
        .collect();
    let json_names: Vec<String> = names.iter().map(|n| n.trim_end().to_string()).collect();
    assert_eq!(json_names, text_names);
    assert!(json["services"][0]["stats"].is_object());
    // --watch redraws in place (home + clear before each frame) until interrupted.
    // (The lab's emulated CPU is slow: give it time for two frames.)
    let watched = sh_output(&format!("timeout -s INT 120 {BIN} list --watch 1"));
    let frames = String::from_utf8_lossy(&watched.stdout);
    assert!(
        frames.matches("\x1b[H\x1b[2J").count() >= 2,
        "{frames}\n{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert!(frames.contains("TCP  10.96.0.1:443 rr"), "{frames}");
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn without_cap_net_admin_the_error_names_the_capability() {
    enter_fresh_netns();
    let out = sh_output(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all {BIN} list"
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
}

/// The virtual servers a node gets from `examples/cluster.yaml`, with their owners.
fn example_owners() -> Owners {
    let mut dump = ClusterDump::default();
    dump.read_file(std::path::Path::new(&format!(
        "{ROOT}/examples/cluster.yaml"
    )))
    .unwrap();
    let mut cfg = PlannerConfig::new("node-a");
    let info = kube_ipvs::model::convert_node(dump.node("node-a").unwrap());
    cfg.node_addresses = info
        .internal_ips
        .iter()
        .chain(&info.external_ips)
        .copied()
        .collect();
    Owners::from_dump(&dump, cfg)
}

fn ipvsadm_add(key: &VsKey) -> String {
    match key {
        VsKey::Service { proto, addr, port } => {
            let sa = match addr {
                std::net::IpAddr::V4(a) => format!("{a}:{port}"),
                std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
            };
            let flag = match proto {
                Proto::Tcp => "-t",
                Proto::Udp => "-u",
                Proto::Sctp => "--sctp-service",
            };
            format!("-A {flag} {sa} -s rr\n")
        }
        VsKey::Fwmark { .. } => unreachable!("the planner makes no fwmark services"),
    }
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn services_names_every_virtual_server_of_the_cluster_and_marks_foreign_ones() {
    enter_fresh_netns();
    let owners = example_owners();
    assert!(owners.len() >= 15, "{}", owners.len());
    let rules: String = owners.iter().map(|(k, _)| ipvsadm_add(k)).collect();
    let foreign = "-A -t 203.0.113.99:80 -s wlc\n-A -f 9 -s rr\n";
    restore(&format!("{rules}{foreign}"));

    let check = |text: &str| {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("TCP")
                    || l.starts_with("UDP")
                    || l.starts_with("SCTP")
                    || l.starts_with("FWM")
            })
            .collect();
        assert_eq!(lines.len(), owners.len() + 2, "{text}");
        for l in &lines {
            if l.starts_with("TCP  203.0.113.99:80") || l.starts_with("FWM  9") {
                assert!(l.ends_with("  # foreign"), "{l}");
            } else {
                let (_, owner) = l
                    .split_once("  # ")
                    .unwrap_or_else(|| panic!("no owner: {l}"));
                assert!(owner.contains('/') && owner.contains(':'), "{l}");
            }
        }
        let kubernetes = lines
            .iter()
            .find(|l| l.starts_with("TCP  10.96.0.1:443 "))
            .unwrap();
        assert!(
            kubernetes.ends_with("  # default/kubernetes:https"),
            "{kubernetes}"
        );
    };
    // From the dump (as `kube-ipvs plan -f`), and from the file the agent publishes.
    check(&kube_ipvs(&format!(
        "list --services -f {ROOT}/examples/cluster.yaml --node node-a"
    )));
    let path = std::env::temp_dir().join(format!("owners-lab-{}.json", std::process::id()));
    owners.write_atomic(&path).unwrap();
    check(&kube_ipvs(&format!(
        "list --services --owners {}",
        path.display()
    )));
    let json: serde_json::Value = serde_json::from_str(&kube_ipvs(&format!(
        "list --services --json --owners {}",
        path.display()
    )))
    .unwrap();
    let foreign: Vec<&str> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["foreign"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(foreign, ["TCP  203.0.113.99:80", "FWM  9"]);
    // Without an owner source, --services says where to get one.
    let out = sh_output(&format!(
        "{BIN} list --services --owners /nonexistent/owners.json"
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-f FILE"));
    std::fs::remove_file(&path).unwrap();
}

/// Other tools' state on a node: a keepalived VIP, an IPVS service on a node address outside the
/// NodePort range (sshd behind IPVS), a fwmark service, an ipset, an iptables chain, a `local`
/// route (`ip route add` makes it `proto boot`), and node-a's addresses (`examples/cluster.yaml`).
fn foreign_state() {
    sh("set -e
        ip link add eth-node type dummy
        ip addr add 192.168.1.10/24 dev eth-node
        ip addr add fd00:1::10/64 dev eth-node nodad
        ip link set eth-node up
        ip route add local 198.18.0.0/15 dev lo table local
        ipset create my-blocklist hash:ip
        iptables -N MY-CHAIN
        iptables -A INPUT -j MY-CHAIN
    ");
    restore(FOREIGN_IPVS);
}

const FOREIGN_IPVS: &str = "-A -t 192.168.1.10:22 -s rr
-A -t 203.0.113.5:80 -s wlc
-a -t 203.0.113.5:80 -r 10.9.0.1:80 -g -w 1
-A -f 5 -s rr
";

/// `GET /metrics` on the agent's metrics address (in this thread's network namespace).
fn metrics() -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect("127.0.0.1:10249").ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Runs `kube-ipvs run --source file:examples/cluster.yaml` as node-a until its first sync has
/// programmed everything (IPVS, addresses, routes, sets, then the iptables rules), then stops it
/// with SIGTERM: the node keeps what the agent programmed, as after a pod's deletion.
fn agent_programs_the_example_cluster() {
    let mut agent = Command::new(BIN)
        .args([
            "run",
            "--source",
            "file:examples/cluster.yaml",
            "--hostname-override",
            "node-a",
        ])
        .current_dir(ROOT)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let synced = |m: &str| {
        m.lines().any(|l| {
            l.starts_with("kubeproxy_sync_proxy_rules_duration_seconds_count") && !l.ends_with(" 0")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !metrics().is_some_and(|m| synced(&m)) {
        if std::time::Instant::now() > deadline || agent.try_wait().unwrap().is_some() {
            let _ = agent.kill();
            let out = agent.wait_with_output().unwrap();
            panic!(
                "the agent never synced:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    sh(&format!("kill -TERM {}", agent.id()));
    agent.wait().unwrap();
}

/// Everything cleanup may touch, as text.
fn node_state() -> String {
    sh(
        "ipvsadm -Sn; ipset list -n | sort; iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; \
        ip6tables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; ip -o link; ip -o addr; \
        ip route show table local; ip -6 route show table local",
    )
}

/// Cleanup after a real agent run (issue 15): the agent programs the example cluster next to
/// other tools' state and is stopped; cleanup then leaves no route, address, set, chain or
/// virtual server of ours, and everything foreign as it was. Without the owners file (cleanup
/// from a debug pod) every one of the agent's virtual servers is still recognised as ours:
/// ClusterIPs through the service-CIDR route the agent put on `lo`.
#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn cleanup_after_the_agent_removes_all_of_ours_and_keeps_foreign_state() {
    enter_fresh_netns();
    foreign_state();
    let foreign_before = sh("ipvsadm -Sn");
    agent_programs_the_example_cluster();

    // What the agent left: its routes through lo, its device, sets, chains and owners file.
    let programmed = node_state();
    for ours in [
        "local 10.96.0.0/16 dev lo proto static",
        "local fd00:10:96::/112 dev lo proto static",
        "kube-ipvs0",
        "KUBE-CLUSTER-IP",
        "-j KUBE-SERVICES",
        "-A -t 10.96.0.1:443",
        "-A -t 192.168.1.10:30080",
    ] {
        assert!(programmed.contains(ours), "{ours:?} not in:\n{programmed}");
    }
    let owners_file = std::path::Path::new(kube_ipvs::owners::DEFAULT_PATH);
    let published = Owners::read(owners_file).unwrap();
    assert!(published.len() >= 15, "{}", published.len());
    // The agent left other tools' virtual servers alone.
    let table = sh("ipvsadm -Sn");
    for line in foreign_before.lines() {
        assert!(table.contains(line), "{line:?} gone:\n{table}");
    }

    // A debug pod sees no owners file: each of the agent's virtual servers is still ours, for
    // a reason read from the kernel, in the safe order.
    let timeout = "--request-timeout 120";
    let dry = kube_ipvs(&format!(
        "cleanup --dry-run --owners /nonexistent/owners.json {timeout}"
    ));
    assert_eq!(
        node_state(),
        programmed,
        "--dry-run changed the node:\n{dry}"
    );
    for (key, _) in published.iter() {
        let line = dry
            .lines()
            .find(|l| l.starts_with(&format!("would delete virtual server {key} (")))
            .unwrap_or_else(|| panic!("{key} not removed:\n{dry}"));
        assert!(!line.contains("published"), "{line}");
    }
    let lines: Vec<&str> = dry.lines().collect();
    let first = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{dry}"))
    };
    let last = |needle: &str| {
        lines
            .iter()
            .rposition(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{dry}"))
    };
    let order = [
        (
            first("would delete virtual server"),
            last("would delete virtual server"),
        ),
        (
            first("would remove iptables rules (IPv4"),
            first("would remove iptables rules (IPv6"),
        ),
        (first("would destroy ipset"), last("would destroy ipset")),
        (
            first("would delete route local 10.96.0.0/16 dev lo"),
            last("would delete route local"),
        ),
        (
            first("would delete link kube-ipvs0"),
            first("would delete link kube-ipvs0"),
        ),
    ];
    assert!(order.windows(2).all(|w| w[0].1 < w[1].0), "{dry}");
    for kept in ["TCP  203.0.113.5:80", "TCP  192.168.1.10:22", "FWM  5"] {
        assert!(
            dry.contains(&format!("kept: virtual server {kept} (not ours)")),
            "{dry}"
        );
    }
    assert!(
        !dry.contains("my-blocklist") && !dry.contains("198.18.0.0"),
        "{dry}"
    );

    // The real run, with the owners file the agent published (removed with the state).
    let done = kube_ipvs(&format!("cleanup {timeout}"));
    assert!(!done.contains("would "), "{done}");
    assert_eq!(sh("ipvsadm -Sn"), foreign_before, "{done}");
    assert_eq!(sh("ipset list -n"), "my-blocklist\n");
    let after = node_state();
    for gone in [
        "KUBE-",
        "kube-ipvs0",
        "proto static",
        "10.96.",
        "fd00:10:96:",
    ] {
        assert!(!after.contains(gone), "{gone:?} left:\n{after}");
    }
    for kept in [
        "-A INPUT -j MY-CHAIN",
        "local 198.18.0.0/15 dev lo",
        "192.168.1.10/24",
        "fd00:1::10/64",
    ] {
        assert!(after.contains(kept), "{kept:?} gone:\n{after}");
    }
    assert!(!owners_file.exists(), "the owners file outlived the state");

    // Idempotent: a second run has nothing left but the foreign entries.
    let again = kube_ipvs(&format!("cleanup {timeout}"));
    assert!(!again.contains("done:"), "{again}");
    assert_eq!(node_state(), after);

    // --all flushes foreign entries too, like stock kube-proxy --cleanup.
    kube_ipvs(&format!("cleanup --all {timeout}"));
    assert_eq!(sh("ipvsadm -Sn"), "");
    assert_eq!(sh("ipset list -n"), "my-blocklist\n");
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn cleanup_library_entry_removes_what_the_agent_published() {
    enter_fresh_netns();
    sh("ipvsadm -A -t 198.51.100.7:8443 -s rr; ipvsadm -A -t 198.51.100.8:80 -s rr");
    let path = std::env::temp_dir().join(format!("owners-cleanup-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"version":1,"virtualServers":[{"protocol":"TCP","address":"198.51.100.7","port":8443,"owner":"a/b:c"}]}"#,
    )
    .unwrap();
    let opts = kube_ipvs::cleanup::CleanupOptions {
        owners_file: Some(path.clone()),
        timeout: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (plan, outcome) = rt
        .block_on(kube_ipvs::cleanup::cleanup(&opts, false))
        .unwrap();
    let outcome = outcome.unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(plan.kept.len(), 1);
    assert_eq!(sh("ipvsadm -Sn"), "-A -t 198.51.100.8:80 -s rr\n");
    assert!(
        !path.exists(),
        "the owners file is removed with the state it describes"
    );
}

/// A KubeProxyConfiguration file for the agent and cleanup tests (IPv4: the namespace has only
/// loopback, so the configuration decides the family).
fn config_file(name: &str, body: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("kube-ipvs-lab-{}-{name}.yaml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
             mode: ipvs\nclusterCIDR: 10.244.0.0/16\n{body}"
        ),
    )
    .unwrap();
    path
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn cleanup_keeps_excluded_virtual_servers_after_a_real_agent_run() {
    enter_fresh_netns();
    let config = config_file("excluded", "ipvs: {excludeCIDRs: [10.96.0.10/32]}\n");
    let config = config.display();
    // The agent programs examples/cluster.yaml for node-a, kube-dns (10.96.0.10) included: the
    // exclusion protects entries from removal, it does not stop the agent from programming them.
    // Healthz and metrics bind their defaults: with --config, kube-proxy ignores those flags.
    let mut agent = Command::new(BIN)
        .current_dir(ROOT)
        .args([
            "run",
            &format!("--config={config}"),
            "--source=file:examples/cluster.yaml",
            "--hostname-override=node-a",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once a second: every probe is a process under emulation, and the agent shares the CPUs.
    let programmed = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let t = sh("ipvsadm -Sn");
        t.contains("-A -t 10.96.0.10:53") && t.contains("-A -t 10.96.0.1:443")
    });
    sh(&format!("kill -TERM {}", agent.id()));
    let status = agent.wait().unwrap();
    assert!(programmed, "the agent did not program the table: {status}");
    let table = sh("ipvsadm -Sn");
    assert!(
        !table.contains("[fd00"),
        "IPv4 only, as configured:\n{table}"
    );

    // Without the agent's configuration, kube-dns's virtual servers are ours (inside the service
    // CIDR the agent routes locally, and published in its owners file) and cleanup would delete
    // them.
    let timeout = "--request-timeout 120";
    let plain = kube_ipvs(&format!("cleanup --dry-run {timeout}"));
    assert!(
        plain.contains(
            "would delete virtual server UDP  10.96.0.10:53 (address in a service CIDR routed locally)"
        ),
        "{plain}"
    );
    // With it (cleanup takes run's --config), the excluded ones stay, everything else goes.
    let done = kube_ipvs(&format!("cleanup --config={config} {timeout}"));
    let left = sh("ipvsadm -Sn");
    let mut services: Vec<&str> = left.lines().filter(|l| l.starts_with("-A")).collect();
    services.sort_unstable();
    assert_eq!(
        services,
        [
            "-A -t 10.96.0.10:53 -s rr",
            "-A -t 10.96.0.10:9153 -s rr",
            "-A -u 10.96.0.10:53 -s rr"
        ],
        "{done}"
    );
    for kept in [
        "TCP  10.96.0.10:53",
        "UDP  10.96.0.10:53",
        "TCP  10.96.0.10:9153",
    ] {
        assert!(
            done.contains(&format!("kept: virtual server {kept} (not ours)")),
            "{done}"
        );
    }
    assert!(!sh("ip -o link").contains("kube-ipvs0"), "{done}");
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn init_only_prepares_the_node_and_exits() {
    enter_fresh_netns();
    // As an init container runs it: argv[0] kube-proxy, kube-proxy's flags.
    let dir = std::env::temp_dir().join(format!("kube-proxy-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kube_proxy = dir.join("kube-proxy");
    let _ = std::fs::remove_file(&kube_proxy);
    std::os::unix::fs::symlink(BIN, &kube_proxy).unwrap();
    let config = config_file("init-only", "ipvs: {strictARP: true, tcpTimeout: 900s}\n");
    assert!(!sh("ip -o link").contains("kube-ipvs0"));
    let out = Command::new(&kube_proxy)
        .args([
            &format!("--config={}", config.display()),
            "--v=2",
            "--init-only",
            "--hostname-override=node-a",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sh("ip -o link").contains("kube-ipvs0"));
    assert_eq!(sh("sysctl -n net.ipv4.vs.conntrack").trim(), "1");
    assert_eq!(sh("sysctl -n net.ipv4.conf.all.arp_ignore").trim(), "1");
    assert!(sh("ipset list -n").contains("KUBE-CLUSTER-IP"));
    assert!(sh("ipvsadm -Ln --timeout").contains("Timeout (tcp tcpfin udp): 900 "));
    assert_eq!(
        sh("ipvsadm -Sn"),
        "",
        "no virtual server: nothing was synced"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
