//! Links, addresses and local prefix routes against the kernel, each test in a fresh network
//! namespace. veth tests run on any Linux with netns; dummy-device and IPVS tests need the lab
//! (the build machines' kernel has neither).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: panics are the failure report

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

use ipnet::IpNet;
use nodenet::link::{AddressChanges, LinkError, Links, host_net};
use nodenet::sysctl::{Setting, Sysctl, Sysctls};

const T: Duration = Duration::from_secs(10);

fn v4s(n: u32) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4((0x0a60_0001 + i).into()))
        .collect()
}

fn v6s(n: u16) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V6(format!("fd00:96::{:x}", i + 1).parse().unwrap()))
        .collect()
}

/// Binds `n` IPv4 and `n / 10` IPv6 addresses, changes some, empties the link.
async fn sync_roundtrip(links: &mut Links, ifindex: u32, dev: &str, n: u32) {
    let n6 = u16::try_from(n / 10).unwrap();
    let mut wanted: BTreeSet<IpAddr> = v4s(n).into_iter().chain(v6s(n6)).collect();
    let changes = links.sync_addresses(ifindex, &wanted).await.unwrap();
    assert_eq!(changes.added, wanted);
    assert!(changes.removed.is_empty());
    let have: BTreeSet<IpNet> = links
        .addresses(ifindex)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let want: BTreeSet<IpNet> = wanted.iter().map(|a| host_net(*a)).collect();
    assert_eq!(have, want);
    // Cross-check with the CLI: every address is there as a host prefix.
    let shown = lab_kit::sh(&format!("ip -o addr show dev {dev}"));
    assert_eq!(
        shown
            .lines()
            .filter(|l| l.contains("/32 ") || l.contains("/128 "))
            .count(),
        wanted.len()
    );
    assert!(shown.contains("inet 10.96.0.1/32 "));
    assert!(shown.contains(&format!("inet6 fd00:96::{n6:x}/128 ")));

    // A second sync of the same set does nothing.
    assert_eq!(
        links.sync_addresses(ifindex, &wanted).await.unwrap(),
        AddressChanges::default()
    );

    // Change a part: 10 removed, 5 added, one re-prefixed by someone else.
    let removed: Vec<IpAddr> = wanted.iter().copied().take(10).collect();
    for r in &removed {
        wanted.remove(r);
    }
    let added: BTreeSet<IpAddr> = v4s(n + 5)
        .into_iter()
        .skip(usize::try_from(n).unwrap())
        .collect();
    wanted.extend(added.iter().copied());
    lab_kit::sh(&format!(
        "ip addr del 10.96.1.1/32 dev {dev} && ip addr add 10.96.1.1/24 dev {dev}"
    ));
    let changes = links.sync_addresses(ifindex, &wanted).await.unwrap();
    let mut expect_added = added.clone();
    expect_added.insert("10.96.1.1".parse().unwrap());
    assert_eq!(changes.added, expect_added);
    let mut expect_removed: BTreeSet<IpNet> = removed.iter().map(|a| host_net(*a)).collect();
    expect_removed.insert("10.96.1.1/24".parse().unwrap());
    assert_eq!(changes.removed, expect_removed);
    let have: BTreeSet<IpNet> = links
        .addresses(ifindex)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(have, wanted.iter().map(|a| host_net(*a)).collect());

    // Binding an address twice or removing one twice is not an error.
    links
        .add_addresses(ifindex, &[*wanted.iter().next().unwrap()])
        .await
        .unwrap();
    links
        .remove_addresses(ifindex, &[host_net(removed[0])])
        .await
        .unwrap();

    // Emptying.
    let changes = links
        .sync_addresses(ifindex, &BTreeSet::new())
        .await
        .unwrap();
    assert_eq!(changes.removed.len(), wanted.len());
    assert!(links.addresses(ifindex).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn addresses_sync_on_a_veth() {
    lab_kit::enter_fresh_netns();
    lab_kit::sh("ip link add nn-a type veth peer name nn-b");
    let mut links = Links::connect(T).await.unwrap();
    let ifindex = links
        .link_index("nn-a")
        .await
        .unwrap()
        .expect("nn-a exists");
    assert_eq!(links.link_index("nope0").await.unwrap(), None);
    sync_roundtrip(&mut links, ifindex, "nn-a", 1000).await;
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn node_addresses_exclude_the_dummy_loopback_and_link_local() {
    lab_kit::enter_fresh_netns();
    lab_kit::sh(
        "ip link add nn-a type veth peer name nn-b && ip link set nn-a up && ip link set nn-b up",
    );
    lab_kit::sh("ip addr add 192.168.5.1/24 dev nn-a && ip addr add fd00:5::1/64 dev nn-a nodad");
    lab_kit::sh("ip addr add 10.96.0.1/32 dev nn-b");
    let mut links = Links::connect(T).await.unwrap();
    let vips = links.link_index("nn-b").await.unwrap().unwrap();
    let all = links.all_addresses().await.unwrap();
    assert!(all.iter().any(|a| a.loopback
        && a.ifname == "lo"
        && a.addr == "127.0.0.1/8".parse::<IpNet>().unwrap()));
    assert!(
        all.iter()
            .any(|a| a.ifname == "nn-b" && a.addr == "10.96.0.1/32".parse::<IpNet>().unwrap())
    );
    let node = links.node_addresses(Some(vips)).await.unwrap();
    let want: BTreeSet<IpAddr> = ["192.168.5.1", "fd00:5::1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        node, want,
        "no loopback, no link-local, nothing of the excluded link"
    );
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn local_prefix_routes_make_a_whole_cidr_local() {
    lab_kit::enter_fresh_netns();
    let mut links = Links::connect(T).await.unwrap();
    let lo = links.link_index("lo").await.unwrap().unwrap();
    let v4: IpNet = "10.96.0.0/12".parse().unwrap();
    let v6: IpNet = "fd00:96::/108".parse().unwrap();
    let listener = TcpListener::bind("0.0.0.0:8080").unwrap();
    assert!(
        TcpStream::connect_timeout(
            &"10.96.5.5:8080".parse().unwrap(),
            Duration::from_millis(300)
        )
        .is_err()
    );

    links.add_local_route(v4, lo).await.unwrap();
    links.add_local_route(v6, lo).await.unwrap();
    links.add_local_route(v4, lo).await.unwrap(); // idempotent
    let routes = links.local_prefix_routes().await.unwrap();
    let ours: Vec<(IpNet, u32, u8)> = routes
        .iter()
        .map(|r| (r.prefix, r.ifindex, r.protocol))
        .collect();
    assert!(ours.contains(&(v4, lo, 4)), "{routes:?}");
    assert!(ours.contains(&(v6, lo, 4)), "{routes:?}");
    assert_eq!(
        routes.iter().filter(|r| r.protocol == 4).count(),
        2,
        "added once: {routes:?}"
    );
    let shown = lab_kit::sh("ip route show table local type local");
    assert!(
        shown.contains("local 10.96.0.0/12 dev lo proto static scope host"),
        "{shown}"
    );
    let shown6 = lab_kit::sh("ip -6 route show table local type local");
    assert!(
        shown6.contains("local fd00:96::/108 dev lo proto static"),
        "{shown6}"
    );

    // Any address of the CIDR is now the node's own.
    let mut c =
        TcpStream::connect_timeout(&"10.96.5.5:8080".parse().unwrap(), Duration::from_secs(2))
            .unwrap();
    let (mut s, _) = listener.accept().unwrap();
    s.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    let listener6 = TcpListener::bind("[::]:8081").unwrap();
    let _c6 = TcpStream::connect_timeout(
        &"[fd00:96::abcd]:8081".parse().unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    listener6.accept().unwrap();

    assert!(links.remove_local_route(v4, lo).await.unwrap());
    assert!(links.remove_local_route(v6, lo).await.unwrap());
    assert!(
        !links.remove_local_route(v4, lo).await.unwrap(),
        "second removal reports absence"
    );
    assert!(
        links
            .local_prefix_routes()
            .await
            .unwrap()
            .iter()
            .all(|r| r.protocol != 4)
    );
    assert!(
        TcpStream::connect_timeout(
            &"10.96.5.5:8080".parse().unwrap(),
            Duration::from_millis(300)
        )
        .is_err()
    );
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn sysctls_in_a_netns() {
    lab_kit::enter_fresh_netns();
    let sys = Sysctls::default();
    let settings = [
        Setting {
            sysctl: Sysctl::IpForward,
            value: 1,
        },
        Setting {
            sysctl: Sysctl::ArpIgnoreAll,
            value: 1,
        },
        Setting {
            sysctl: Sysctl::ArpAnnounceAll,
            value: 2,
        },
    ];
    assert_eq!(sys.apply(&settings).unwrap().len(), 3);
    assert!(sys.apply(&settings).unwrap().is_empty());
    assert_eq!(
        lab_kit::sh("sysctl -n net.ipv4.conf.all.arp_announce").trim(),
        "2"
    );
    assert!(sys.kernel_version().unwrap().major >= 4);
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn dummy_device_lifecycle() {
    lab_kit::enter_fresh_netns();
    let mut links = Links::connect(T).await.unwrap();
    let index = links.ensure_dummy("kube-ipvs0").await.unwrap();
    assert_eq!(
        links.ensure_dummy("kube-ipvs0").await.unwrap(),
        index,
        "idempotent"
    );
    let shown = lab_kit::sh("ip -d link show kube-ipvs0");
    assert!(shown.contains("dummy"), "{shown}");
    assert!(
        shown.contains("state DOWN") && !shown.contains(",UP"),
        "never set up: {shown}"
    );
    // Fewer addresses than on the veth: the lab's CPU is emulated.
    sync_roundtrip(&mut links, index, "kube-ipvs0", 300).await;
    assert!(links.delete_link("kube-ipvs0").await.unwrap());
    assert!(!links.delete_link("kube-ipvs0").await.unwrap());
    assert_eq!(links.link_index("kube-ipvs0").await.unwrap(), None);

    // Someone else's device of that name is never taken over.
    lab_kit::sh("ip link add kube-ipvs0 type veth peer name other0");
    let err = links.ensure_dummy("kube-ipvs0").await.unwrap_err();
    assert!(matches!(err, LinkError::NotDummy { .. }), "{err}");
    assert!(err.to_string().contains("veth"), "{err}");
}

/// The lab check of the issue: with only a local prefix route (no address bound anywhere)
/// and a virtual server on 10.96.5.5:80, a client namespace and the node itself reach a
/// backend in its own namespace.
#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn ipvs_through_a_local_prefix_route() {
    lab_kit::enter_fresh_netns();
    Sysctls::default()
        .apply(&[
            Setting {
                sysctl: Sysctl::IpForward,
                value: 1,
            },
            Setting {
                sysctl: Sysctl::VsConntrack,
                value: 1,
            },
        ])
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let backend = lab_kit::NetnsThread::spawn(move || {
        lab_kit::sh("ip addr add 192.168.50.2/24 dev lab-b && ip link set lab-b up");
        lab_kit::sh("ip route add default via 192.168.50.1");
        let l = TcpListener::bind("192.168.50.2:80").unwrap();
        ready_tx.send(()).unwrap();
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (mut s, peer) = l.accept().unwrap();
            s.write_all(b"backend").unwrap();
            peers.push(peer.ip());
        }
        peers
    });
    let client = lab_kit::NetnsThread::spawn(|| {
        lab_kit::sh("ip addr add 192.168.60.2/24 dev lab-c && ip link set lab-c up");
        lab_kit::sh("ip route add default via 192.168.60.1");
        let mut s =
            TcpStream::connect_timeout(&"10.96.5.5:80".parse().unwrap(), Duration::from_secs(30))
                .expect("client namespace reaches the VIP");
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    });
    backend.veth("lab-a", "lab-b", "192.168.50.1/24");
    client.veth("lab-d", "lab-c", "192.168.60.1/24");

    let mut links = Links::connect(T).await.unwrap();
    let lo = links.link_index("lo").await.unwrap().unwrap();
    links
        .add_local_route("10.96.0.0/12".parse().unwrap(), lo)
        .await
        .unwrap();
    lab_kit::sh(
        "ipvsadm -A -t 10.96.5.5:80 -s rr && ipvsadm -a -t 10.96.5.5:80 -r 192.168.50.2:80 -m",
    );
    assert!(
        lab_kit::sh("ip addr")
            .lines()
            .all(|l| !l.contains("10.96.")),
        "no VIP bound anywhere"
    );

    backend.start();
    ready_rx.recv().unwrap();
    client.start();
    assert_eq!(client.join(), "backend");
    let mut s =
        TcpStream::connect_timeout(&"10.96.5.5:80".parse().unwrap(), Duration::from_secs(30))
            .expect("the node itself reaches the VIP");
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert_eq!(buf, "backend");
    let peers = backend.join();
    assert!(
        peers.contains(&"192.168.60.2".parse::<IpAddr>().unwrap()),
        "client seen as itself: {peers:?}"
    );
}
