//! Round trips domain -> kernel client -> domain for every scheduler, flag, forwarding method,
//! key kind and set.

use std::net::IpAddr;

use super::*;
use crate::types::ServicePortName;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SCHEDULERS: [Scheduler; 14] = [
    Scheduler::Rr,
    Scheduler::Wrr,
    Scheduler::Lc,
    Scheduler::Wlc,
    Scheduler::Lblc,
    Scheduler::Lblcr,
    Scheduler::Dh,
    Scheduler::Sh,
    Scheduler::Sed,
    Scheduler::Nq,
    Scheduler::Fo,
    Scheduler::Ovf,
    Scheduler::Mh,
    Scheduler::Twos,
];

fn keys() -> Vec<VsKey> {
    vec![
        VsKey::new(Proto::Tcp, ip("10.96.0.1"), 443),
        VsKey::new(Proto::Udp, ip("10.96.0.10"), 53),
        VsKey::new(Proto::Sctp, ip("10.96.0.11"), 3868),
        VsKey::new(Proto::Tcp, ip("fd00:10:96::1"), 80),
        VsKey::Fwmark {
            family: Family::V4,
            mark: 7,
        },
        VsKey::Fwmark {
            family: Family::V6,
            mark: 0xffff_fff0,
        },
    ]
}

/// What the kernel reports for a service we set: HASHED added.
fn as_reported(mut s: ipvs::Service) -> ipvs::Service {
    s.flags = s.flags | ipvs::ServiceFlags::HASHED;
    s
}

#[test]
fn every_key_round_trips() {
    for key in keys() {
        assert_eq!(vs_key(&virtual_service_key(&key)), key, "{key}");
    }
}

#[test]
fn every_scheduler_and_flag_round_trips() {
    let flags = [
        0,
        VsFlags::PERSISTENT,
        VsFlags::ONEPACKET,
        VsFlags::SCHED1,
        VsFlags::SCHED2,
        VsFlags::SCHED3,
        VsFlags::MANAGED,
    ];
    for key in keys() {
        for scheduler in SCHEDULERS {
            for bits in flags {
                let persistent = bits & VsFlags::PERSISTENT != 0;
                let spec = VsSpec {
                    scheduler,
                    flags: VsFlags(bits),
                    timeout: if persistent { 10800 } else { 0 },
                    netmask: if persistent {
                        24
                    } else {
                        key.family().host_prefix()
                    },
                };
                let s = service(&key, &spec).unwrap();
                assert_eq!(s.scheduler.as_str(), scheduler.name());
                assert_eq!(vs_key(&s.key), key);
                let back = vs_spec(&as_reported(s)).unwrap();
                assert!(spec.matches(&back), "{key} {spec:?} -> {back:?}");
                assert_eq!(back.flags.managed(), spec.flags);
                assert_eq!((back.timeout, back.netmask), (spec.timeout, spec.netmask));
            }
        }
    }
}

#[test]
fn unknown_schedulers_are_not_observed() {
    let s = ipvs::Service::new(
        ipvs::VirtualServiceKey::tcp(ip("10.0.0.1"), 80),
        ipvs::SchedulerName::new("none").unwrap(),
    );
    assert_eq!(vs_spec(&s), None);
}

#[test]
fn every_forwarding_method_round_trips_but_bypass() {
    for forward in [
        Forward::Masq,
        Forward::Local,
        Forward::Tunnel,
        Forward::Route,
    ] {
        for addr in [ip("10.244.1.5"), ip("fd00:244::5")] {
            let rs = RealServer {
                weight: 3,
                forward,
                ..RealServer::masq(addr, 8080)
            };
            let mut d = destination(&rs).unwrap();
            assert_eq!((d.addr, d.port, d.weight), (addr, 8080, 3));
            d.active_conns = 4;
            d.inactive_conns = 5;
            assert_eq!(
                real_server(&d),
                RealServer {
                    active: 4,
                    inactive: 5,
                    ..rs
                }
            );
        }
    }
    let bypass = RealServer {
        forward: Forward::Bypass,
        ..RealServer::masq(ip("10.244.1.5"), 80)
    };
    assert!(destination(&bypass).is_err());
}

#[test]
fn plan_ops_map_to_ipvs_requests() {
    use crate::plan::Op;
    let vs = VsKey::new(Proto::Tcp, ip("10.96.0.1"), 443);
    let spec = VsSpec::plain(Scheduler::Wrr, Family::V4);
    let rs = RealServer::masq(ip("10.244.1.5"), 6443);
    let owner = ServicePortName {
        service: crate::types::ServiceName::new("default", "kubernetes"),
        port: "https".into(),
    };
    let key = virtual_service_key(&vs);
    let svc = service(&vs, &spec).unwrap();
    let dest = destination(&rs).unwrap();
    let cases = [
        (
            Op::AddVs {
                key: vs,
                spec,
                owner,
            },
            ipvs::IpvsOp::AddService(svc.clone()),
        ),
        (
            Op::UpdateVs { key: vs, spec },
            ipvs::IpvsOp::UpdateService(svc),
        ),
        (Op::DelVs { key: vs }, ipvs::IpvsOp::DeleteService(key)),
        (
            Op::AddRs { vs, rs },
            ipvs::IpvsOp::AddDestination(key, dest.clone()),
        ),
        (
            Op::UpdateRs { vs, rs },
            ipvs::IpvsOp::UpdateDestination(key, dest),
        ),
        (
            Op::DelRs { vs, rs: rs.key },
            ipvs::IpvsOp::DeleteDestination {
                service: key,
                addr: rs.key.addr,
                port: rs.key.port,
            },
        ),
    ];
    for (op, want) in cases {
        assert_eq!(ipvs_op(&op).unwrap().unwrap(), want, "{op}");
    }
    assert!(
        ipvs_op(&Op::BindAddr {
            addr: ip("10.0.0.1")
        })
        .is_none()
    );
    assert!(
        ipvs_op(&Op::ClearConntrack {
            vs,
            reply_src: None
        })
        .is_none()
    );
}

#[test]
fn set_names_match_the_rules_and_fit_ipset() {
    let sets = our_sets(&Family::ALL);
    assert_eq!(sets.len(), 34);
    for (kernel, name) in &sets {
        assert!(kernel.len() <= 31, "{kernel}");
        let spec = create_spec(name);
        assert_eq!(&spec.name, kernel);
        assert_eq!(spec.set_type.name(), name.kind.set_type().name());
        match name.kind.set_type() {
            SetType::BitmapPort => assert_eq!(spec.port_range, Some((0, 65535))),
            _ => {
                // Stock's options exactly (pkg/proxy/ipvs/ipset/ipset.go createSet: hashsize
                // 1024, maxelem 65536, no comment extension): stock's `create -exist` accepts
                // the set only if they are equal. A full set grows in place (apply.rs).
                assert_eq!((spec.hashsize, spec.maxelem), (Some(1024), Some(65_536)));
                assert!(!spec.comment);
                assert_eq!(spec.family, Some(name.family.into()));
            }
        }
    }
    let v4 = IpsetName::new(SetKind::ClusterIp, Family::V4);
    assert_eq!(set_name(&v4), v4.to_string());
    let v6 = IpsetName::new(SetKind::LoadBalancerSourceCidr, Family::V6);
    assert_eq!(set_name(&v6), "KUBE-6-LOAD-BALANCER-SOURCE-CID");
}

#[test]
fn every_member_kind_round_trips() {
    let members = [
        IpsetEntry::Ip(ip("10.96.0.1")),
        IpsetEntry::IpPort(ip("10.96.0.1"), Proto::Tcp, 443),
        IpsetEntry::IpPort(ip("fd00::1"), Proto::Udp, 53),
        IpsetEntry::IpPort(ip("192.168.1.10"), Proto::Sctp, 30000),
        IpsetEntry::IpPortIp(ip("10.244.1.2"), Proto::Tcp, 53, ip("10.244.1.2")),
        IpsetEntry::IpPortNet(
            ip("203.0.113.10"),
            Proto::Tcp,
            443,
            "192.168.0.0/16".parse().unwrap(),
        ),
        IpsetEntry::Port(30080),
    ];
    for m in members {
        let e = entry(&m);
        assert_eq!(e.to_string(), m.to_string());
        assert_eq!(ipset_entry(&e), Some(m));
    }
    assert_eq!(
        ipset_entry(&nset::Entry::Net("10.0.0.0/8".parse().unwrap())),
        None
    );
    assert_eq!(
        ipset_entry(&nset::Entry::IpPort {
            ip: ip("10.0.0.1"),
            proto: nset::Protocol::Other(1),
            port: 0
        }),
        None
    );
}

#[test]
fn the_planners_route_protocol_is_the_one_nodenet_writes() {
    assert_eq!(
        u8::from(nodenet::route::OUR_PROTOCOL),
        crate::plan::ownership::OUR_ROUTE_PROTOCOL
    );
}
