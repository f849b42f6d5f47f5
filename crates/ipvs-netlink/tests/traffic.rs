//! Real traffic through IPVS: three backend namespaces (veth to the node namespace, a TCP server
//! in each answering its name), clients in the node namespace (like a host-network pod reaching
//! a ClusterIP), one virtual service per scheduler, and the distribution each scheduler promises.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use ipvs_netlink::{Client, Destination, SchedulerName, Service, ServiceFlags, VirtualServiceKey};
use lab_kit::backend::{read_name, start_servers};
use lab_kit::{enter_fresh_netns, sh};

const VIP: [u8; 4] = [10, 96, 0, 1];

/// Connect to the VIP on `port`; the answering backend's name and the open connection.
fn ask(port: u16) -> (String, TcpStream) {
    let mut c = TcpStream::connect_timeout(&SocketAddr::from((VIP, port)), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect {port}: {e}"));
    (read_name(&mut c), c)
}

fn names(port: u16, n: usize) -> Vec<String> {
    (0..n).map(|_| ask(port).0).collect()
}

fn count(names: &[String], who: &str) -> usize {
    names.iter().filter(|n| *n == who).count()
}

fn backend(i: u8) -> IpAddr {
    IpAddr::from([10, 0, i, 1])
}

async fn service(
    c: &mut Client,
    port: u16,
    sched: &str,
    flags: ServiceFlags,
    weights: [u32; 3],
) -> VirtualServiceKey {
    let key = VirtualServiceKey::tcp(IpAddr::from(VIP), port);
    let mut s = Service::new(key, SchedulerName::new(sched).unwrap());
    s.flags = flags;
    c.add_service(&s).await.unwrap();
    for (i, w) in (1..=3).zip(weights) {
        c.add_destination(&key, &Destination::masq(backend(i), 8080, w))
            .await
            .unwrap();
    }
    key
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn schedulers_distribute_real_connections_as_promised() {
    enter_fresh_netns();
    sh("ip link add kube-ipvs0 type dummy && ip addr add 10.96.0.1/32 dev kube-ipvs0");
    let _backends = start_servers(3);
    let mut c = Client::connect().await.unwrap();

    // rr rotates exactly.
    service(&mut c, 81, "rr", ServiceFlags::NONE, [1, 1, 1]).await;
    let seq = names(81, 9);
    let mut first: Vec<_> = seq[..3].to_vec();
    first.sort();
    assert_eq!(first, ["b1", "b2", "b3"], "{seq:?}");
    assert!(
        (3..9).all(|i| seq[i] == seq[i - 3]),
        "rr does not rotate: {seq:?}"
    );

    // wrr follows weights 3:2:1.
    service(&mut c, 82, "wrr", ServiceFlags::NONE, [3, 2, 1]).await;
    let seq = names(82, 12);
    assert_eq!(
        (count(&seq, "b1"), count(&seq, "b2"), count(&seq, "b3")),
        (6, 4, 2),
        "{seq:?}"
    );

    // Weight 0 receives no new connections.
    service(&mut c, 83, "rr", ServiceFlags::NONE, [1, 0, 1]).await;
    let seq = names(83, 10);
    assert_eq!(count(&seq, "b2"), 0, "{seq:?}");
    assert_eq!(count(&seq, "b1"), 5, "{seq:?}");

    // sh: one client (one source address) always reaches the same backend...
    service(&mut c, 84, "sh", ServiceFlags::NONE, [1, 1, 1]).await;
    let seq = names(84, 10);
    assert!(
        seq.iter().all(|n| *n == seq[0]),
        "sh moved the client: {seq:?}"
    );
    // ...and with sh-port the source port is hashed too, spreading one client's connections.
    service(&mut c, 85, "sh", ServiceFlags::SH_PORT, [1, 1, 1]).await;
    let seq = names(85, 30);
    let distinct = ["b1", "b2", "b3"]
        .iter()
        .filter(|b| count(&seq, b) > 0)
        .count();
    assert!(distinct >= 2, "sh-port did not spread: {seq:?}");

    // lc, sed, nq: with connections held open, each new one goes to an idle backend.
    for (port, sched) in [(86, "lc"), (87, "sed"), (88, "nq")] {
        service(&mut c, port, sched, ServiceFlags::NONE, [1, 1, 1]).await;
        let held: Vec<(String, TcpStream)> = (0..3).map(|_| ask(port)).collect();
        let mut who: Vec<_> = held.iter().map(|(n, _)| n.clone()).collect();
        who.sort();
        assert_eq!(
            who,
            ["b1", "b2", "b3"],
            "{sched} did not pick the least loaded"
        );
        // Close one: the next connection must go to the backend that became idle.
        let mut held = held;
        let (freed, conn) = held.remove(1);
        drop(conn);
        std::thread::sleep(Duration::from_millis(500));
        let (next, _keep) = ask(port);
        assert_eq!(
            next, freed,
            "{sched}: new connection not sent to the idle backend"
        );
    }
}
