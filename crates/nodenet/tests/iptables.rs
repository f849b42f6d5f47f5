//! The iptables rule set: golden renders (plain `cargo test`), and in a fresh network
//! namespace with both back ends: apply, read back with `iptables-save`, re-apply is a no-op,
//! jumps stay first, remove; plus MASQUERADE through the mark, seen by a server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: panics are the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use nodenet::AddressFamily;
use nodenet::iptables::render::restore_text;
use nodenet::iptables::{
    Applied, Backend, Iptables, KubeSet, LocalDetect, NoNodeAccess, Protocol, RuleSet,
};

fn golden(name: &str, text: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text, want,
        "render differs from {path} (UPDATE_GOLDEN=1 rewrites it)"
    );
}

fn all_sets() -> BTreeSet<KubeSet> {
    KubeSet::ALL.into_iter().collect()
}

#[test]
fn golden_minimal_v4() {
    golden(
        "minimal-v4.rules",
        &restore_text(&RuleSet::new(AddressFamily::Inet)),
    );
}

#[test]
fn golden_full_v4_cluster_cidr() {
    let mut d = RuleSet::new(AddressFamily::Inet);
    d.local_detect = LocalDetect::ClusterCidr("10.244.0.0/16".parse().unwrap());
    d.random_fully = true;
    d.nonempty_sets = all_sets();
    d.extra_reject_cidrs = [
        "10.96.0.0/12".parse().unwrap(),
        "fd00:96::/108".parse().unwrap(),
    ]
    .into();
    d.extra_reject_sets = ["KUBE-IPVS-SERVICE-CIDRS".to_string()].into();
    d.lb_no_node_access = [NoNodeAccess {
        ip: "192.0.2.10".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 443,
    }]
    .into();
    golden("full-v4.rules", &restore_text(&d));
}

#[test]
fn golden_masquerade_all_v6() {
    let mut d = RuleSet::new(AddressFamily::Inet6);
    d.masquerade_all = true;
    d.masquerade_bit = 15;
    d.nonempty_sets = all_sets();
    d.extra_reject_cidrs = [
        "10.96.0.0/12".parse().unwrap(),
        "fd00:96::/108".parse().unwrap(),
    ]
    .into();
    golden("masquerade-all-v6.rules", &restore_text(&d));
}

#[test]
fn golden_no_detector_uses_src_dst() {
    let mut d = RuleSet::new(AddressFamily::Inet);
    d.nonempty_sets = [KubeSet::ClusterIp].into();
    let text = restore_text(&d);
    assert!(text.contains(
        "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ\n"
    ));
}

const T: Duration = Duration::from_secs(20);

/// Creates every set the rules reference (the ipset client is tested elsewhere; the CLI
/// suffices to give the rules something to reference).
fn create_sets(family: AddressFamily) {
    let fam = match family {
        AddressFamily::Inet => "inet",
        AddressFamily::Inet6 => "inet6",
    };
    let mut script = String::new();
    for s in KubeSet::ALL {
        let ty = match s {
            KubeSet::LoopBack | KubeSet::LoadBalancerSourceIp => {
                format!("hash:ip,port,ip family {fam}")
            }
            KubeSet::LoadBalancerSourceCidr => format!("hash:ip,port,net family {fam}"),
            KubeSet::NodePortTcp
            | KubeSet::NodePortLocalTcp
            | KubeSet::NodePortUdp
            | KubeSet::NodePortLocalUdp
            | KubeSet::HealthCheckNodePort => "bitmap:port range 0-65535".to_string(),
            KubeSet::IpvsIps => format!("hash:ip family {fam}"),
            _ => format!("hash:ip,port family {fam}"),
        };
        script.push_str(&format!("create {} {ty} -exist\n", s.name(family)));
    }
    let path =
        std::env::temp_dir().join(format!("nodenet-sets-{}-{:?}", std::process::id(), family));
    std::fs::write(&path, script).unwrap();
    lab_kit::sh(&format!("ipset restore < {}", path.display()));
    std::fs::remove_file(path).unwrap();
}

fn save_cmd(backend: Backend, family: AddressFamily, table: &str) -> String {
    let bin = match (backend, family) {
        (Backend::Nft, AddressFamily::Inet) => "iptables-nft-save",
        (Backend::Nft, AddressFamily::Inet6) => "ip6tables-nft-save",
        (Backend::Legacy, AddressFamily::Inet) => "iptables-legacy-save",
        (Backend::Legacy, AddressFamily::Inet6) => "ip6tables-legacy-save",
    };
    // Without the "# Generated/Completed on <time>" lines, so two saves compare.
    lab_kit::sh(&format!("{bin} -t {table}"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn apply_roundtrip(backend: Backend, family: AddressFamily) {
    lab_kit::enter_fresh_netns();
    create_sets(family);
    let ipt = Iptables::new(backend, family, T);
    let mut d = RuleSet::new(family);
    d.local_detect = LocalDetect::ClusterCidr(match family {
        AddressFamily::Inet => "10.244.0.0/16".parse().unwrap(),
        AddressFamily::Inet6 => "fd00:244::/64".parse().unwrap(),
    });
    d.random_fully = ipt.random_fully().unwrap();
    d.nonempty_sets = all_sets();
    d.extra_reject_cidrs = [
        "10.96.0.0/12".parse().unwrap(),
        "fd00:96::/108".parse().unwrap(),
    ]
    .into();

    // Someone else's rules first in the built-in chains: ours must go in front of them.
    let ipt_bin = match (backend, family) {
        (Backend::Nft, AddressFamily::Inet) => "iptables-nft",
        (Backend::Nft, AddressFamily::Inet6) => "ip6tables-nft",
        (Backend::Legacy, AddressFamily::Inet) => "iptables-legacy",
        (Backend::Legacy, AddressFamily::Inet6) => "ip6tables-legacy",
    };
    lab_kit::sh(&format!(
        "{ipt_bin} -t filter -A INPUT -p tcp --dport 22 -j ACCEPT"
    ));
    lab_kit::sh(&format!(
        "{ipt_bin} -t nat -N FOREIGN && {ipt_bin} -t nat -A PREROUTING -j FOREIGN"
    ));

    assert_eq!(ipt.apply(&d).unwrap(), Applied::Restored(2));
    let nat = save_cmd(backend, family, "nat");
    let filter = save_cmd(backend, family, "filter");
    for chain in [
        "KUBE-SERVICES",
        "KUBE-POSTROUTING",
        "KUBE-NODE-PORT",
        "KUBE-LOAD-BALANCER",
        "KUBE-MARK-MASQ",
    ] {
        assert!(
            nat.contains(&format!(":{chain} ")),
            "nat lacks {chain}:\n{nat}"
        );
    }
    let first_prerouting = nat
        .lines()
        .find(|l| l.starts_with("-A PREROUTING"))
        .unwrap();
    assert!(first_prerouting.contains("-j KUBE-SERVICES"), "{nat}");
    let input: Vec<&str> = filter
        .lines()
        .filter(|l| l.starts_with("-A INPUT"))
        .collect();
    assert!(input[0].ends_with("-j KUBE-IPVS-FILTER"), "{filter}");
    assert!(input[1].ends_with("-j KUBE-PROXY-FIREWALL"), "{filter}");
    assert!(input[2].ends_with("-j KUBE-NODE-PORT"), "{filter}");
    assert!(input[3].contains("--dport 22"), "{filter}");
    assert!(
        filter.contains("-A KUBE-IPVS-FILTER -d 10.96.0.0/12 -m conntrack --ctstate NEW -j REJECT")
            || filter.contains(
                "-A KUBE-IPVS-FILTER -d fd00:96::/108 -m conntrack --ctstate NEW -j REJECT"
            ),
        "{filter}"
    );
    assert!(
        filter.contains("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"),
        "foreign rule kept: {filter}"
    );

    // Re-applying the same description touches nothing.
    assert_eq!(
        ipt.apply(&d).unwrap(),
        Applied::Unchanged,
        "nat:\n{nat}\nfilter:\n{filter}"
    );
    assert_eq!(save_cmd(backend, family, "filter"), filter);

    // A changed description is applied; a jump moved away is put back in front.
    d.masquerade_all = true;
    assert_eq!(ipt.apply(&d).unwrap(), Applied::Restored(1));
    lab_kit::sh(&format!(
        "{ipt_bin} -t filter -D INPUT -m comment --comment 'kubernetes ipvs access filter' -j KUBE-IPVS-FILTER \
         && {ipt_bin} -t filter -A INPUT -m comment --comment 'kubernetes ipvs access filter' -j KUBE-IPVS-FILTER"
    ));
    assert_eq!(ipt.apply(&d).unwrap(), Applied::Restored(1));
    let filter = save_cmd(backend, family, "filter");
    let input: Vec<&str> = filter
        .lines()
        .filter(|l| l.starts_with("-A INPUT"))
        .collect();
    assert_eq!(input.len(), 4, "{filter}");
    assert!(input[0].ends_with("-j KUBE-IPVS-FILTER"), "{filter}");
    assert_eq!(ipt.apply(&d).unwrap(), Applied::Unchanged);

    // Cleanup leaves only the foreign rules.
    ipt.remove().unwrap();
    let nat = save_cmd(backend, family, "nat");
    let filter = save_cmd(backend, family, "filter");
    assert!(
        !nat.contains("KUBE-") && !filter.contains("KUBE-"),
        "{nat}{filter}"
    );
    assert!(nat.contains("-A PREROUTING -j FOREIGN"));
    assert!(filter.contains("--dport 22"));
    ipt.remove().unwrap();
}

#[test]
#[ignore = "needs root and netns: cargo xtask test"]
fn apply_nft_v4() {
    apply_roundtrip(Backend::Nft, AddressFamily::Inet);
}

#[test]
#[ignore = "needs root and netns: cargo xtask test"]
fn apply_nft_v6() {
    apply_roundtrip(Backend::Nft, AddressFamily::Inet6);
}

#[test]
#[ignore = "needs root and netns: cargo xtask test"]
fn apply_legacy_v4() {
    apply_roundtrip(Backend::Legacy, AddressFamily::Inet);
}

#[test]
#[ignore = "needs root and netns: cargo xtask test"]
fn apply_legacy_v6() {
    apply_roundtrip(Backend::Legacy, AddressFamily::Inet6);
}

/// Adds (or removes) the server's ip,tcp:port in KUBE-CLUSTER-IP with our own ipset client,
/// opened on this thread and so in this test's namespace.
fn cluster_ip_member(present: bool) {
    use nodenet::ipset::{Config, Entry, IpsetClient, Protocol};
    let entry = Entry::IpPort {
        ip: "192.168.88.2".parse().unwrap(),
        proto: Protocol::Tcp,
        port: 8080,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = Config {
            timeout: Duration::from_secs(120),
            ..Config::default()
        };
        let mut client = IpsetClient::connect_with(config).await.unwrap();
        if present {
            client.add("KUBE-CLUSTER-IP", &entry).await.unwrap();
        } else {
            client.del("KUBE-CLUSTER-IP", &entry).await.unwrap();
        }
    });
}

/// MASQUERADE through the mark: a client namespace reaches a server namespace through this
/// one. While the server's ip:port is in KUBE-CLUSTER-IP (filled by our own ipset client), the
/// rendered rules mark the off-cluster client's packets and KUBE-POSTROUTING masquerades
/// them: the server sees this node's address. Without the entry it sees the client's.
#[test]
#[ignore = "needs root and netns: cargo xtask test"]
fn masquerade_through_the_mark() {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, TcpListener, TcpStream};

    lab_kit::enter_fresh_netns();
    nodenet::sysctl::Sysctls::default()
        .apply(&[nodenet::sysctl::Setting {
            sysctl: nodenet::sysctl::Sysctl::IpForward,
            value: 1,
        }])
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let server = lab_kit::NetnsThread::spawn(move || {
        lab_kit::sh("ip addr add 192.168.88.2/24 dev mq-s && ip link set mq-s up");
        lab_kit::sh("ip route add default via 192.168.88.1");
        let l = TcpListener::bind("192.168.88.2:8080").unwrap();
        ready_tx.send(()).unwrap();
        for _ in 0..2 {
            let (mut s, peer) = l.accept().unwrap();
            s.write_all(peer.ip().to_string().as_bytes()).unwrap();
        }
    });
    let (ask_tx, ask_rx) = std::sync::mpsc::channel::<()>();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<String>();
    let client = lab_kit::NetnsThread::spawn(move || {
        lab_kit::sh("ip addr add 192.168.99.2/24 dev mq-c && ip link set mq-c up");
        lab_kit::sh("ip route add default via 192.168.99.1");
        while ask_rx.recv().is_ok() {
            let mut s = TcpStream::connect_timeout(
                &"192.168.88.2:8080".parse().unwrap(),
                Duration::from_secs(5),
            )
            .expect("client reaches the server");
            let mut seen = String::new();
            s.read_to_string(&mut seen).unwrap();
            seen_tx.send(seen).unwrap();
        }
    });
    server.veth("mq-n", "mq-s", "192.168.88.1/24");
    client.veth("mq-m", "mq-c", "192.168.99.1/24");
    create_sets(AddressFamily::Inet);
    cluster_ip_member(true);

    let backend = Backend::detect(AddressFamily::Inet, T).unwrap();
    let ipt = Iptables::new(backend, AddressFamily::Inet, T);
    let mut d = RuleSet::new(AddressFamily::Inet);
    d.local_detect = LocalDetect::ClusterCidr("10.244.0.0/16".parse().unwrap());
    d.random_fully = ipt.random_fully().unwrap();
    d.nonempty_sets = [KubeSet::ClusterIp].into();
    ipt.apply(&d).unwrap();
    server.start();
    ready_rx.recv().unwrap();
    client.start();

    ask_tx.send(()).unwrap();
    let seen: IpAddr = seen_rx.recv().unwrap().parse().unwrap();
    assert_eq!(
        seen,
        "192.168.88.1".parse::<IpAddr>().unwrap(),
        "masqueraded to the node's address"
    );

    cluster_ip_member(false);
    ask_tx.send(()).unwrap();
    let seen: IpAddr = seen_rx.recv().unwrap().parse().unwrap();
    assert_eq!(
        seen,
        "192.168.99.2".parse::<IpAddr>().unwrap(),
        "not marked, not masqueraded"
    );
    drop(ask_tx);
    server.join();
    client.join();
    ipt.remove().unwrap();
}

/// `nodenet::nft::delete_table` removes an nftables table that another tool made, and reports a
/// missing one as such. The table is `ip nat`, which `iptables-nft` creates (there is no `nft`
/// binary here); the nftables proxier's `ip kube-proxy` differs only by name.
#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn nft_delete_table_removes_another_tools_table() {
    use nodenet::SocketOptions;
    use nodenet::nft::{NftFamily, delete_table};
    lab_kit::enter_fresh_netns();
    lab_kit::sh(
        "iptables-nft -t nat -N KUBE-NFT-TEST && iptables-nft -t nat -A PREROUTING -j KUBE-NFT-TEST",
    );
    assert!(lab_kit::sh("iptables-nft-save -t nat").contains("KUBE-NFT-TEST"));
    let opts = SocketOptions {
        timeout: Duration::from_secs(60),
        ..SocketOptions::default()
    };
    assert!(
        delete_table(NftFamily::Ip, "nat", &opts).await.unwrap(),
        "it existed"
    );
    assert!(!lab_kit::sh("iptables-nft-save -t nat").contains("KUBE-NFT-TEST"));
    assert!(
        !delete_table(NftFamily::Ip, "nat", &opts).await.unwrap(),
        "already gone"
    );
    assert!(
        !delete_table(NftFamily::Ip6, "kube-proxy", &opts)
            .await
            .unwrap()
    );
}
