//! Kernel tests: real IPVS, each in a fresh network namespace of its own. They need the lab
//! (`cargo xtask test -p ipvs-netlink`) and fail loudly without IPVS.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipvs_netlink::{
    AddressFamily, Client, ClientOptions, Destination, Error, ForwardMethod, IpvsOp, Protocol,
    SchedulerName, Service, ServiceFlags, Timeouts, TunnelFlags, TunnelType, VirtualServiceKey,
};
use lab_kit::{NetnsThread, enter_fresh_netns, ipvsadm_lines, sh};

const NEEDS: &str = "needs IPVS: cargo xtask test";

/// The kernel's `/proc/net/ip_vs` walks IPVS's global service hash without filtering by network
/// namespace in `seq_next` (only `seq_start`, re-run on every ~4 KiB read, filters), so while
/// another namespace holds IPVS services it skips ours and shows theirs. Tests here read it
/// ([`Client::snapshot`]), so they run one at a time: parallel test threads would be exactly such
/// other namespaces.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the kernel reports back for a service we set: HASHED added, zeroed stats.
fn as_reported(s: &Service) -> Service {
    let mut s = s.clone();
    s.flags = s.flags | ServiceFlags::HASHED;
    s.stats = Some(Default::default());
    s
}

fn as_reported_dest(d: &Destination) -> Destination {
    let mut d = d.clone();
    d.stats = Some(Default::default());
    d
}

fn services() -> Vec<Service> {
    let all_flags = ServiceFlags::PERSISTENT
        | ServiceFlags::ONEPACKET
        | ServiceFlags::SCHED1
        | ServiceFlags::SCHED2
        | ServiceFlags::SCHED3;
    let mut v4 = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        SchedulerName::rr(),
    );
    v4.flags = all_flags;
    v4.timeout = 3600;
    v4.netmask = 24;
    let mut v6 = Service::new(
        VirtualServiceKey::udp(ip("fd00::1"), 53),
        SchedulerName::sh(),
    )
    .persistent(60);
    v6.flags = v6.flags | ServiceFlags::SH_PORT | ServiceFlags::SH_FALLBACK;
    v6.netmask = 64;
    let sctp = Service::new(
        VirtualServiceKey::Inet {
            protocol: Protocol::Sctp,
            addr: ip("10.0.0.2"),
            port: 3868,
        },
        SchedulerName::lc(),
    );
    let fw4 = Service::new(
        VirtualServiceKey::Fwmark {
            family: AddressFamily::Inet,
            mark: 7,
        },
        SchedulerName::wlc(),
    );
    let mut fw6 = Service::new(
        VirtualServiceKey::Fwmark {
            family: AddressFamily::Inet6,
            mark: 0xffff_fff0,
        },
        SchedulerName::mh(),
    );
    fw6.flags = ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT;
    let mut sip = Service::new(
        VirtualServiceKey::udp(ip("10.0.0.3"), 5060),
        SchedulerName::rr(),
    )
    .persistent(30);
    sip.pe_name = Some("sip".into());
    vec![v4, v6, sctp, fw4, fw6, sip]
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn every_service_field_round_trips() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let _ = NEEDS;
    enter_fresh_netns();
    let mut c = Client::connect().await.expect("connect: is ip_vs loaded?");
    for s in services() {
        c.add_service(&s)
            .await
            .unwrap_or_else(|e| panic!("add {}: {e}", s.key));
        assert_eq!(
            c.get_service(&s.key).await.unwrap(),
            as_reported(&s),
            "get {}",
            s.key
        );
    }
    let listed: BTreeMap<_, _> = c
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s))
        .collect();
    let want: BTreeMap<_, _> = services().iter().map(|s| (s.key, as_reported(s))).collect();
    assert_eq!(listed, want);
    // Update: every settable field changes.
    for s in services() {
        let mut u = s.clone();
        u.scheduler = SchedulerName::wrr();
        u.flags = ServiceFlags::PERSISTENT;
        u.timeout = 77;
        u.netmask = u.key.family().max_prefix() - 8;
        u.pe_name = None;
        c.update_service(&u)
            .await
            .unwrap_or_else(|e| panic!("update {}: {e}", s.key));
        assert_eq!(
            c.get_service(&s.key).await.unwrap(),
            as_reported(&u),
            "updated {}",
            s.key
        );
    }
    for s in services() {
        c.delete_service(&s.key).await.unwrap();
        assert!(matches!(
            c.get_service(&s.key).await,
            Err(Error::NoSuchService { .. })
        ));
    }
    assert!(c.list_services().await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn every_lab_scheduler_is_accepted() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    let mut c = Client::connect().await.unwrap();
    // ip_vs_twos (Linux 6.8) is not in the lab's 6.1 kernel.
    for (i, name) in [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
    ]
    .iter()
    .enumerate()
    {
        let s = Service::new(
            VirtualServiceKey::tcp(ip("10.1.0.1"), 1000 + u16::try_from(i).unwrap()),
            SchedulerName::new(name).unwrap(),
        );
        c.add_service(&s)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            c.get_service(&s.key).await.unwrap().scheduler.as_str(),
            *name
        );
    }
}

fn destinations() -> Vec<Destination> {
    let mut masq = Destination::masq(ip("10.0.1.1"), 8080, 1);
    masq.upper_threshold = 100;
    masq.lower_threshold = 10;
    vec![
        masq,
        Destination::masq(ip("10.0.1.2"), 8080, 0),
        Destination::masq(ip("10.0.1.3"), 8080, i32::MAX.unsigned_abs()),
        Destination::new(ip("10.0.1.4"), 80, ForwardMethod::DirectRoute, 65535),
        Destination::new(ip("10.0.1.5"), 80, ForwardMethod::IPIP, 3),
        Destination::new(
            ip("10.0.1.6"),
            80,
            ForwardMethod::Tunnel {
                kind: TunnelType::Gue,
                port: 6080,
                flags: TunnelFlags::CSUM,
            },
            4,
        ),
        Destination::new(
            ip("10.0.1.7"),
            80,
            ForwardMethod::Tunnel {
                kind: TunnelType::Gre,
                port: 0,
                flags: TunnelFlags::REMCSUM,
            },
            5,
        ),
    ]
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn every_destination_field_round_trips() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    let mut c = Client::connect().await.unwrap();
    let svc = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        SchedulerName::wrr(),
    );
    c.add_service(&svc).await.unwrap();
    for d in destinations() {
        c.add_destination(&svc.key, &d)
            .await
            .unwrap_or_else(|e| panic!("add {}: {e}", d.addr));
    }
    // A v6 service with a v4 tunnel destination (mixed families are allowed for tunnels).
    let v6 = Service::new(
        VirtualServiceKey::tcp(ip("fd00::1"), 443),
        SchedulerName::rr(),
    );
    c.add_service(&v6).await.unwrap();
    let mixed = Destination::new(ip("10.0.2.1"), 443, ForwardMethod::IPIP, 1);
    let native = Destination::masq(ip("fd00::2"), 8443, 2);
    c.add_destination(&v6.key, &mixed).await.unwrap();
    c.add_destination(&v6.key, &native).await.unwrap();

    let by_addr = |v: Vec<Destination>| {
        v.into_iter()
            .map(|d| (d.addr, d))
            .collect::<BTreeMap<_, _>>()
    };
    let got = by_addr(c.list_destinations(&svc.key).await.unwrap());
    let want = by_addr(destinations().iter().map(as_reported_dest).collect());
    assert_eq!(got, want);
    let got6 = by_addr(c.list_destinations(&v6.key).await.unwrap());
    assert_eq!(
        got6,
        by_addr(vec![as_reported_dest(&mixed), as_reported_dest(&native)])
    );

    // Update every settable field of one destination.
    let mut u = destinations()[0].clone();
    u.weight = 9;
    u.upper_threshold = 0;
    u.lower_threshold = 0;
    u.forward = ForwardMethod::DirectRoute;
    c.update_destination(&svc.key, &u).await.unwrap();
    let got = by_addr(c.list_destinations(&svc.key).await.unwrap());
    assert_eq!(got[&u.addr], as_reported_dest(&u));

    c.delete_destination(&svc.key, u.addr, u.port)
        .await
        .unwrap();
    assert!(matches!(
        c.delete_destination(&svc.key, u.addr, u.port).await,
        Err(Error::NoSuchDestination { .. })
    ));
    assert_eq!(
        c.list_destinations(&svc.key).await.unwrap().len(),
        destinations().len() - 1
    );
    // A destination dump of a missing service is empty (kernel semantics).
    assert!(
        c.list_destinations(&VirtualServiceKey::tcp(ip("10.9.9.9"), 1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn kernel_errors_are_typed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    let mut c = Client::connect().await.unwrap();
    let s = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        SchedulerName::rr(),
    );
    c.add_service(&s).await.unwrap();
    let e = c.add_service(&s).await.unwrap_err();
    assert!(matches!(e, Error::ServiceExists { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "add service TCP 10.0.0.1:80: service already exists"
    );
    let missing = VirtualServiceKey::tcp(ip("10.0.0.9"), 80);
    let e = c.delete_service(&missing).await.unwrap_err();
    assert!(matches!(e, Error::NoSuchService { .. }), "{e}");
    let e = c
        .add_destination(&missing, &Destination::masq(ip("10.0.1.1"), 80, 1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoSuchService { .. }), "{e}");
    let d = Destination::masq(ip("10.0.1.1"), 80, 1);
    c.add_destination(&s.key, &d).await.unwrap();
    let e = c.add_destination(&s.key, &d).await.unwrap_err();
    assert!(matches!(e, Error::DestinationExists { .. }), "{e}");
    let bogus = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.2"), 80),
        SchedulerName::new("nosuchsched").unwrap(),
    );
    let e = c.add_service(&bogus).await.unwrap_err();
    assert!(
        matches!(&e, Error::UnknownScheduler { scheduler, .. } if scheduler == "nosuchsched"),
        "{e}"
    );
    assert!(
        e.to_string().contains("unknown scheduler \"nosuchsched\""),
        "{e}"
    );
    let e = c
        .add_destination(&s.key, &Destination::masq(ip("10.0.1.2"), 80, u32::MAX))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    // The connection still works after errors.
    assert_eq!(c.list_services().await.unwrap().len(), 1);
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn info_timeouts_zero_flush() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    let mut c = Client::connect().await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.version_triple(), (1, 2, 1));
    assert!(info.conn_tab_size > 0);
    let t = Timeouts {
        tcp: 901,
        tcp_fin: 121,
        udp: 301,
    };
    c.set_timeouts(&t).await.unwrap();
    assert_eq!(c.timeouts().await.unwrap(), t);
    assert_eq!(
        ipvsadm_lines("-Ln --timeout"),
        vec!["Timeout (tcp tcpfin udp): 901 121 301"]
    );
    // 0 leaves a value unchanged.
    c.set_timeouts(&Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 55,
    })
    .await
    .unwrap();
    assert_eq!(c.timeouts().await.unwrap(), Timeouts { udp: 55, ..t });
    let s = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        SchedulerName::rr(),
    );
    c.add_service(&s).await.unwrap();
    c.zero(Some(&s.key)).await.unwrap();
    c.zero(None).await.unwrap();
    assert!(matches!(
        c.zero(Some(&VirtualServiceKey::tcp(ip("10.0.0.2"), 1)))
            .await,
        Err(Error::NoSuchService { .. })
    ));
    assert!(c.daemons().await.unwrap().is_empty());
    c.flush().await.unwrap();
    assert!(c.list_services().await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn ipvsadm_shows_exactly_what_we_add() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    let mut c = Client::connect().await.unwrap();
    let mut s = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        SchedulerName::sh(),
    )
    .persistent(300);
    s.flags = s.flags | ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
    s.netmask = 24;
    c.add_service(&s).await.unwrap();
    let mut d = Destination::masq(ip("10.0.1.1"), 8080, 7);
    d.upper_threshold = 100;
    d.lower_threshold = 10;
    c.add_destination(&s.key, &d).await.unwrap();
    c.add_destination(
        &s.key,
        &Destination::new(ip("10.0.1.2"), 80, ForwardMethod::DirectRoute, 0),
    )
    .await
    .unwrap();
    let u = Service::new(
        VirtualServiceKey::udp(ip("fd00::1"), 53),
        SchedulerName::wrr(),
    );
    c.add_service(&u).await.unwrap();
    c.add_destination(&u.key, &Destination::masq(ip("fd00::2"), 5353, 65535))
        .await
        .unwrap();
    let f = Service::new(
        VirtualServiceKey::Fwmark {
            family: AddressFamily::Inet,
            mark: 7,
        },
        SchedulerName::wlc(),
    );
    c.add_service(&f).await.unwrap();
    c.add_destination(
        &f.key,
        &Destination::new(ip("10.0.1.3"), 0, ForwardMethod::IPIP, 2),
    )
    .await
    .unwrap();

    let lines = ipvsadm_lines("-Ln --exact");
    for want in [
        "TCP 10.0.0.1:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0",
        "-> 10.0.1.1:8080 Masq 7 0 0",
        "-> 10.0.1.2:80 Route 0 0 0",
        "UDP [fd00::1]:53 wrr",
        "-> [fd00::2]:5353 Masq 65535 0 0",
        "FWM 7 wlc",
        "-> 10.0.1.3:0 Tunnel 2 0 0",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} not in {lines:#?}"
        );
    }
    let thresholds = ipvsadm_lines("-Ln --thresholds");
    assert!(
        thresholds
            .iter()
            .any(|l| l == "-> 10.0.1.1:8080 100 10 0 0"),
        "{thresholds:#?}"
    );
    let stats = ipvsadm_lines("-Ln --stats --exact");
    assert!(
        stats.iter().any(|l| l == "TCP 10.0.0.1:80 0 0 0 0 0"),
        "{stats:#?}"
    );
    assert!(
        stats.iter().any(|l| l == "-> 10.0.1.1:8080 0 0 0 0 0"),
        "{stats:#?}"
    );
    let persist = ipvsadm_lines("-Ln --persistent-conn");
    assert!(
        persist.iter().any(|l| l == "-> 10.0.1.1:8080 7 0 0 0"),
        "{persist:#?}"
    );
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn we_decode_exactly_what_ipvsadm_adds() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    sh("ipvsadm -A -t 10.1.0.1:80 -s wrr -p 600 -M 255.255.255.0 \
        && ipvsadm -a -t 10.1.0.1:80 -r 10.1.0.2:80 -m -w 3 -x 50 -y 5 \
        && ipvsadm -a -t 10.1.0.1:80 -r 10.1.0.3:80 -g -w 0 \
        && ipvsadm -a -t 10.1.0.1:80 -r 10.1.0.4:80 -i -w 65535 \
        && ipvsadm -a -t 10.1.0.1:80 -r 10.1.0.5:80 -i --tun-type gue --tun-port 6080 --tun-csum -w 1 \
        && ipvsadm -A -u [fd00::1]:53 -s mh -b mh-fallback,mh-port \
        && ipvsadm -a -u [fd00::1]:53 -r [fd00::2]:5353 -m -w 1 \
        && ipvsadm -A -f 42 -s sh -b sh-port -o \
        && ipvsadm -A --sctp-service 10.1.0.9:3868 -s lc -p \
        && ipvsadm --set 100 20 30");
    let mut c = Client::connect().await.unwrap();
    let table = c.table().await.unwrap();
    let svc = |k: VirtualServiceKey| {
        table
            .services
            .get(&k)
            .unwrap_or_else(|| panic!("{k} missing: {table:#?}"))
    };

    let t = svc(VirtualServiceKey::tcp(ip("10.1.0.1"), 80));
    let mut want = Service::new(t.service.key, SchedulerName::wrr()).persistent(600);
    want.netmask = 24;
    assert_eq!(t.service, as_reported(&want));
    let dests: BTreeMap<_, _> = t.destinations.iter().map(|d| (d.addr, d.clone())).collect();
    let mut m = Destination::masq(ip("10.1.0.2"), 80, 3);
    m.upper_threshold = 50;
    m.lower_threshold = 5;
    assert_eq!(dests[&ip("10.1.0.2")], as_reported_dest(&m));
    assert_eq!(
        dests[&ip("10.1.0.3")],
        as_reported_dest(&Destination::new(
            ip("10.1.0.3"),
            80,
            ForwardMethod::DirectRoute,
            0
        ))
    );
    assert_eq!(
        dests[&ip("10.1.0.4")],
        as_reported_dest(&Destination::new(
            ip("10.1.0.4"),
            80,
            ForwardMethod::IPIP,
            65535
        ))
    );
    let gue = ForwardMethod::Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: TunnelFlags::CSUM,
    };
    assert_eq!(
        dests[&ip("10.1.0.5")],
        as_reported_dest(&Destination::new(ip("10.1.0.5"), 80, gue, 1))
    );

    let u = svc(VirtualServiceKey::udp(ip("fd00::1"), 53));
    let mut want = Service::new(u.service.key, SchedulerName::mh());
    want.flags = ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT;
    assert_eq!(u.service, as_reported(&want));
    assert_eq!(
        u.destinations,
        vec![as_reported_dest(&Destination::masq(ip("fd00::2"), 5353, 1))]
    );

    let f = svc(VirtualServiceKey::Fwmark {
        family: AddressFamily::Inet,
        mark: 42,
    });
    let mut want = Service::new(f.service.key, SchedulerName::sh());
    want.flags = ServiceFlags::SH_PORT | ServiceFlags::ONEPACKET;
    assert_eq!(f.service, as_reported(&want));

    let s = svc(VirtualServiceKey::Inet {
        protocol: Protocol::Sctp,
        addr: ip("10.1.0.9"),
        port: 3868,
    });
    assert_eq!(
        s.service,
        as_reported(&Service::new(s.service.key, SchedulerName::lc()).persistent(360))
    );
    assert_eq!(
        c.timeouts().await.unwrap(),
        Timeouts {
            tcp: 100,
            tcp_fin: 20,
            udp: 30
        }
    );
}

fn bulk_ops(n: u16) -> Vec<IpvsOp> {
    let mut ops = Vec::new();
    for i in 0..n {
        let [hi, lo] = i.to_be_bytes();
        let key = VirtualServiceKey::tcp(IpAddr::from([10, 96, hi, lo]), 80);
        ops.push(IpvsOp::AddService(Service::new(key, SchedulerName::rr())));
        ops.push(IpvsOp::AddDestination(
            key,
            Destination::masq(IpAddr::from([10, 244, hi, lo]), 8080, 1),
        ));
        ops.push(IpvsOp::AddDestination(
            key,
            Destination::masq(IpAddr::from([10, 245, hi, lo]), 8080, 2),
        ));
    }
    ops
}

async fn apply_batch(ack_every_op: bool) {
    enter_fresh_netns();
    let opts = ClientOptions {
        window: 64,
        ack_every_op,
        ..ClientOptions::default()
    };
    let mut c = Client::with_options(opts).await.unwrap();
    let mut ops = bulk_ops(500);
    // Failures in the middle and at a datagram's end must not stop the others.
    ops.insert(
        100,
        IpvsOp::DeleteService(VirtualServiceKey::tcp(ip("10.200.0.1"), 1)),
    );
    ops.insert(700, ops[0].clone());
    ops.push(IpvsOp::AddDestination(
        VirtualServiceKey::tcp(ip("10.200.0.2"), 1),
        Destination::masq(ip("10.0.0.1"), 1, 1),
    ));
    let results = c.apply(&ops).await;
    assert_eq!(results.len(), ops.len());
    for (i, r) in results.iter().enumerate() {
        match i {
            100 => assert!(matches!(r, Err(Error::NoSuchService { .. })), "{i}: {r:?}"),
            700 => assert!(matches!(r, Err(Error::ServiceExists { .. })), "{i}: {r:?}"),
            i if i == ops.len() - 1 => {
                assert!(matches!(r, Err(Error::NoSuchService { .. })), "{i}: {r:?}")
            }
            _ => assert!(r.is_ok(), "{i}: {r:?}"),
        }
    }
    let table = c.table().await.unwrap();
    assert_eq!(table.services.len(), 500);
    assert!(table.services.values().all(|s| s.destinations.len() == 2));
    // The /proc fast path sees the same services, weights and connection counts.
    let snap = c.snapshot().await.unwrap();
    assert_eq!(snap.services.len(), 500);
    for s in &snap.services {
        let t = &table.services[&s.key];
        assert_eq!(s.scheduler, t.service.scheduler);
        let mut a: Vec<_> = s
            .destinations
            .iter()
            .map(|d| (d.addr, d.port, d.weight, d.active_conns, d.inactive_conns))
            .collect();
        let mut b: Vec<_> = t
            .destinations
            .iter()
            .map(|d| (d.addr, d.port, d.weight, d.active_conns, d.inactive_conns))
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn apply_pipelines_and_reports_each_op_ack_every_op() {
    let _serial = ONE_AT_A_TIME.lock().await;
    apply_batch(true).await;
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn apply_pipelines_and_reports_each_op_errors_only() {
    let _serial = ONE_AT_A_TIME.lock().await;
    apply_batch(false).await;
}

#[tokio::test]
#[ignore = "needs IPVS: cargo xtask test"]
async fn client_in_another_namespace_by_path() {
    let _serial = ONE_AT_A_TIME.lock().await;
    enter_fresh_netns();
    // A thread that owns a second fresh namespace until told to exit.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = NetnsThread::spawn(move || {
        let _ = done_rx.recv();
    });
    let path = holder.path();
    let mut here = Client::connect().await.unwrap();
    let opts = ClientOptions {
        netns: Some(path.into()),
        ..ClientOptions::default()
    };
    let mut there = Client::with_options(opts).await.unwrap();
    let s = Service::new(
        VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        SchedulerName::rr(),
    );
    there.add_service(&s).await.unwrap();
    assert_eq!(there.list_services().await.unwrap().len(), 1);
    assert!(
        here.list_services().await.unwrap().is_empty(),
        "the service leaked into our namespace"
    );
    assert_eq!(there.snapshot().await.unwrap().services.len(), 1);
    assert!(here.snapshot().await.unwrap().services.is_empty());
    holder.start();
    done_tx.send(()).unwrap();
    holder.join();
}
