//! UDP conntrack cleanup against the kernel, in fresh network namespaces: a client here, a
//! UDP server in another namespace behind a veth pair, a DNAT from a "service" address. The
//! stale entry keeps pointing at the old backend until our cleanup deletes it; the next
//! packet then creates an entry to the new backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: panics are the failure report

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use nodenet::AddressFamily;
use nodenet::conntrack::{Conntrack, Flow, ReplySource};

struct Setup {
    service: IpAddr,
    client: IpAddr,
    backend_a: IpAddr,
    backend_b: IpAddr,
    ipt: &'static str,
}

fn v4() -> Setup {
    Setup {
        service: "10.96.0.10".parse().unwrap(),
        client: "192.168.77.1".parse().unwrap(),
        backend_a: "192.168.77.2".parse().unwrap(),
        backend_b: "192.168.77.3".parse().unwrap(),
        ipt: "iptables",
    }
}

fn v6() -> Setup {
    Setup {
        service: "fd00:96::10".parse().unwrap(),
        client: "fd00:77::1".parse().unwrap(),
        backend_a: "fd00:77::2".parse().unwrap(),
        backend_b: "fd00:77::3".parse().unwrap(),
        ipt: "ip6tables",
    }
}

fn dnat(s: &Setup, op: &str, backend: IpAddr) -> String {
    let to = match backend {
        IpAddr::V4(b) => format!("{b}:5353"),
        IpAddr::V6(b) => format!("[{b}]:5353"),
    };
    format!(
        "{} -t nat {op} OUTPUT -d {} -p udp --dport 53 -j DNAT --to-destination {to}",
        s.ipt, s.service
    )
}

fn ping(sock: &UdpSocket, s: &Setup) {
    sock.send_to(b"ping", SocketAddr::new(s.service, 53))
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("no answer from the backend");
    assert_eq!(&buf[..n], b"pong");
}

fn ours(flows: &[Flow], s: &Setup) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| f.protocol == 17 && f.orig.dst == s.service && f.orig.dport == 53)
        .copied()
        .collect()
}

async fn stale_udp_entry_is_deleted_and_recreated(s: Setup) {
    lab_kit::enter_fresh_netns();
    let plen = if s.service.is_ipv4() { 24 } else { 64 };
    let nodad = if s.service.is_ipv4() { "" } else { " nodad" };
    let (a, b) = (s.backend_a, s.backend_b);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let server = lab_kit::NetnsThread::spawn(move || {
        lab_kit::sh(&format!("ip addr add {a}/{plen} dev ct-b{nodad}"));
        lab_kit::sh(&format!("ip addr add {b}/{plen} dev ct-b{nodad}"));
        lab_kit::sh("ip link set ct-b up");
        let sock = UdpSocket::bind(SocketAddr::new(
            if a.is_ipv4() {
                "0.0.0.0".parse().unwrap()
            } else {
                "::".parse().unwrap()
            },
            5353,
        ))
        .unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 16];
        loop {
            let (n, from) = sock.recv_from(&mut buf).expect("server timed out");
            if &buf[..n] == b"quit" {
                break;
            }
            sock.send_to(b"pong", from).unwrap();
        }
    });
    lab_kit::sh(&format!(
        "ip link add ct-a type veth peer name ct-b netns {}",
        server.tid
    ));
    lab_kit::sh(&format!("ip addr add {}/{plen} dev ct-a{nodad}", s.client));
    lab_kit::sh("ip link set ct-a up");
    let svc_net = if s.service.is_ipv4() {
        "10.96.0.0/12"
    } else {
        "fd00:96::/108"
    };
    lab_kit::sh(&format!("ip route add {svc_net} dev ct-a"));
    server.start();
    ready_rx.recv().unwrap();
    lab_kit::sh(&dnat(&s, "-A", s.backend_a));

    let client = UdpSocket::bind(SocketAddr::new(s.client, 40000)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    ping(&client, &s);

    let family = AddressFamily::of(s.service);
    let mut ct = Conntrack::connect(Duration::from_secs(5)).await.unwrap();
    let flows = ours(&ct.flows(family).await.unwrap(), &s);
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].reply.src, s.backend_a);
    assert_eq!(flows[0].reply.sport, 5353);
    let cli = lab_kit::sh(&format!(
        "conntrack -L -f {} -p udp --orig-dst {} 2>/dev/null",
        if s.service.is_ipv4() { "ipv4" } else { "ipv6" },
        s.service
    ));
    assert!(
        cli.contains(&format!("src={}", s.backend_a)),
        "conntrack -L: {cli}"
    );

    // The endpoint moves; the entry still sends the client to the old backend.
    lab_kit::sh(&dnat(&s, "-D", s.backend_a));
    lab_kit::sh(&dnat(&s, "-A", s.backend_b));
    ping(&client, &s);
    let flows = ours(&ct.flows(family).await.unwrap(), &s);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].reply.src, s.backend_a, "stale entry expected");

    // Deleting by another endpoint touches nothing; by the stale one removes it.
    let none = ct
        .delete_udp(s.service, 53, &ReplySource::Is(s.backend_b))
        .await
        .unwrap();
    assert!(none.is_empty());
    let gone = ct
        .delete_udp(s.service, 53, &ReplySource::NotIn([s.backend_b].into()))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert!(ours(&ct.flows(family).await.unwrap(), &s).is_empty());
    let cli = lab_kit::sh(&format!(
        "conntrack -L -f {} -p udp --orig-dst {} 2>/dev/null",
        if s.service.is_ipv4() { "ipv4" } else { "ipv6" },
        s.service
    ));
    assert!(
        !cli.contains("dport=53"),
        "conntrack -L still shows it: {cli}"
    );

    // The next packet creates an entry to the new backend.
    ping(&client, &s);
    let flows = ours(&ct.flows(family).await.unwrap(), &s);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].reply.src, s.backend_b);

    // Deleting what is already gone is fine.
    assert_eq!(ct.delete(&gone).await.unwrap(), 1);

    client
        .send_to(b"quit", SocketAddr::new(s.service, 53))
        .unwrap();
    server.join();
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn udp_conntrack_cleanup_v4() {
    stale_udp_entry_is_deleted_and_recreated(v4()).await;
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn udp_conntrack_cleanup_v6() {
    stale_udp_entry_is_deleted_and_recreated(v6()).await;
}
