use std::collections::BTreeMap;

use ipvs_netlink::{Protocol, SchedulerName, Service, TunnelFlags};

use super::*;

const CAPTURE: &str = include_str!("../../../../tests/fixtures/ipvsadm-1.31/cases.out");

/// `=== -Ln ARGS` section -> its text.
fn sections() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in CAPTURE.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("=== ") {
            out.extend(cur.take());
            cur = Some((name.trim_end().to_string(), String::new()));
        } else if let Some((_, text)) = cur.as_mut() {
            text.push_str(line);
        }
    }
    out.extend(cur);
    out
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(key: VirtualServiceKey, sched: &str) -> Service {
    let mut s = Service::new(key, SchedulerName::new(sched).unwrap());
    s.flags = ServiceFlags::HASHED;
    s.stats = Some(Stats::default());
    s
}

fn persistent(mut s: Service, timeout: u32, netmask: Option<u8>) -> Service {
    s.flags = s.flags | ServiceFlags::PERSISTENT;
    s.timeout = timeout;
    if let Some(m) = netmask {
        s.netmask = m;
    }
    s
}

fn dest(addr: &str, port: u16, forward: ForwardMethod, weight: u32) -> Destination {
    let mut d = Destination::new(ip(addr), port, forward, weight);
    d.stats = Some(Stats::default());
    d
}

fn inet(protocol: Protocol, addr: &str, port: u16) -> VirtualServiceKey {
    VirtualServiceKey::Inet {
        protocol,
        addr: ip(addr),
        port,
    }
}

fn ts(service: Service, destinations: Vec<Destination>) -> TableService {
    TableService {
        service,
        destinations,
    }
}

/// The table `tests/fixtures/ipvsadm-1.31/cases.sh` builds, as the kernel reports it (DR and
/// tunnel ports forced to the virtual port, `-p` alone = 360 s), in a scrambled order.
fn fixture_table() -> Vec<TableService> {
    let mut sh = svc(inet(Protocol::Tcp, "10.96.0.11", 80), "sh");
    sh.flags = sh.flags | ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
    let mut tunnel = dest("10.244.1.6", 80, ForwardMethod::IPIP, 1);
    tunnel.upper_threshold = 100;
    tunnel.lower_threshold = 10;
    let mut mh = svc(inet(Protocol::Udp, "10.96.0.12", 80), "mh");
    mh.flags = mh.flags | ServiceFlags::MH_PORT | ServiceFlags::ONEPACKET;
    let mut nq = persistent(svc(inet(Protocol::Udp, "10.96.0.14", 80), "nq"), 30, None);
    nq.flags = nq.flags | ServiceFlags::ONEPACKET;
    vec![
        ts(
            svc(
                VirtualServiceKey::Fwmark {
                    family: AddressFamily::Inet,
                    mark: 42,
                },
                "wlc",
            ),
            vec![dest("10.244.1.8", 0, ForwardMethod::DirectRoute, 1)],
        ),
        ts(nq, vec![]),
        ts(
            persistent(
                svc(inet(Protocol::Tcp, "fd00::1", 443), "rr"),
                100,
                Some(64),
            ),
            vec![dest(
                "fd00:10::1234:5678:9abc:def0",
                8443,
                ForwardMethod::Masquerade,
                1,
            )],
        ),
        ts(
            svc(inet(Protocol::Tcp, "10.96.0.1", 443), "rr"),
            vec![
                dest("10.0.0.2", 443, ForwardMethod::DirectRoute, 0),
                dest("10.0.0.1", 6443, ForwardMethod::Masquerade, 1),
            ],
        ),
        ts(persistent(sh, 60, Some(24)), vec![tunnel]),
        ts(
            svc(inet(Protocol::Tcp, "203.0.113.254", 65535), "sed"),
            vec![dest(
                "198.51.100.254",
                65534,
                ForwardMethod::Masquerade,
                65535,
            )],
        ),
        ts(mh, vec![]),
        ts(
            persistent(
                svc(inet(Protocol::Udp, "10.96.0.10", 53), "wrr"),
                10800,
                None,
            ),
            vec![dest("10.244.1.5", 53, ForwardMethod::Masquerade, 100_000)],
        ),
        ts(
            svc(inet(Protocol::Sctp, "10.96.0.13", 9000), "lc"),
            vec![dest("10.244.1.7", 9000, ForwardMethod::Masquerade, 1)],
        ),
        ts(
            persistent(
                svc(
                    VirtualServiceKey::Fwmark {
                        family: AddressFamily::Inet6,
                        mark: 43,
                    },
                    "rr",
                ),
                360,
                None,
            ),
            vec![],
        ),
    ]
}

const INFO: Info = Info {
    version: 0x01_02_01,
    conn_tab_size: 4096,
};

fn none(_: &VirtualServiceKey) -> Annotation {
    Annotation::None
}

#[test]
fn matches_every_ipvsadm_listing_of_the_capture() {
    let table = fixture_table();
    let sections = sections();
    let all =
        |columns, exact| kernel_table(Some(&INFO), &table, ListFormat { columns, exact }, &none);
    let cases: [(&str, String); 8] = [
        ("-Ln", all(Columns::Default, false)),
        ("-Ln --stats", all(Columns::Stats, false)),
        ("-Ln --rate", all(Columns::Rate, false)),
        ("-Ln --exact --stats", all(Columns::Stats, true)),
        ("-Ln --persistent-conn", all(Columns::PersistentConn, false)),
        ("-Ln --thresholds", all(Columns::Thresholds, false)),
        ("-Ln --sort", all(Columns::Default, false)),
        (
            "-Ln -t",
            kernel_table(
                None,
                table
                    .iter()
                    .filter(|t| t.service.key == inet(Protocol::Tcp, "10.96.0.1", 443)),
                ListFormat::default(),
                &none,
            ),
        ),
    ];
    for (name, got) in cases {
        assert_eq!(got, sections[name], "ipvsadm {name}");
    }
    let fwm = kernel_table(
        None,
        table.iter().filter(|t| {
            t.service.key
                == VirtualServiceKey::Fwmark {
                    family: AddressFamily::Inet,
                    mark: 42,
                }
        }),
        ListFormat::default(),
        &none,
    );
    assert_eq!(fwm, sections["-Ln -f"]);
    let timeouts = ipvs_netlink::Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(timeout_line(&timeouts), sections["-Ln --timeout"]);
}

#[test]
fn large_counters_scale_like_print_largenum() {
    let cases: [(u64, &str, &str); 7] = [
        (0, "        0", "        0"),
        (99_999_999, " 99999999", " 99999999"),
        (100_000_000, "  100000K", " 100000000"),
        (999_999_999_999, "     999G", " 999999999999"),
        (1_000_000_000, "    1000M", " 1000000000"),
        (123_456_789_012_345, "     123T", " 123456789012345"),
        (u64::MAX, "18446744T", " 18446744073709551615"),
    ];
    for (v, scaled, exact) in cases {
        let mut s = String::new();
        largenum(&mut s, v, false);
        assert_eq!(s, scaled, "{v}");
        let mut s = String::new();
        largenum(&mut s, v, true);
        assert_eq!(s, exact, "{v} exact");
    }
}

#[test]
fn stats_and_rates_print_the_kernel_counters() {
    let mut s = svc(inet(Protocol::Tcp, "10.0.0.1", 80), "rr");
    s.stats = Some(Stats {
        conns: 5,
        inpkts: 123_456_789,
        outpkts: 7,
        inbytes: 2_000_000_000,
        outbytes: 1,
        cps: 1,
        inpps: 2,
        outpps: 3,
        inbps: 4,
        outbps: 5,
    });
    let mut d = dest("10.1.0.1", 8080, ForwardMethod::Masquerade, 1);
    d.stats = Some(Stats {
        cps: 123_456_789,
        inbps: 300_000_000,
        ..Stats::default()
    });
    let table = [ts(s, vec![d])];
    let stats = kernel_table(
        None,
        &table,
        ListFormat {
            columns: Columns::Stats,
            exact: false,
        },
        &none,
    );
    assert!(
        stats.ends_with(
            "TCP  10.0.0.1:80                         5  123456K        7    2000M        1\n  -> 10.1.0.1:8080                       0        0        0        0        0\n"
        ),
        "{stats}"
    );
    // Destination rates: CPS/InPPS/OutPPS in full (`%8llu`), the byte rates scaled.
    let rate = kernel_table(
        None,
        &table,
        ListFormat {
            columns: Columns::Rate,
            exact: false,
        },
        &none,
    );
    assert!(
        rate.ends_with(
            "  -> 10.1.0.1:8080                123456789        0        0  300000K        0\n"
        ),
        "{rate}"
    );
}

#[test]
fn service_details_follow_ipvsadm() {
    let mut s = persistent(
        svc(inet(Protocol::Tcp, "10.0.0.1", 80), "wlc"),
        10,
        Some(16),
    );
    s.flags = s.flags | ServiceFlags::SCHED1 | ServiceFlags::SCHED3;
    s.pe_name = Some("sip".into());
    let gue = ForwardMethod::Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: TunnelFlags::CSUM,
    };
    let table = [ts(
        s,
        vec![
            dest("10.1.0.2", 80, gue, 3),
            dest("10.1.0.1", 80, ForwardMethod::Local, 2),
        ],
    )];
    let text = kernel_table(None, &table, ListFormat::default(), &|_| {
        Annotation::Owner("default/web:http".into())
    });
    assert_eq!(
        text,
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.1:80 wlc (flag-1,flag-3) persistent 10 mask 255.255.0.0 pe sip  # default/web:http\n",
            "  -> 10.1.0.1:80                  Local   2      0          0         \n",
            "  -> 10.1.0.2:80                  Tunnel  3      0          0         \n",
        )
    );
    let tun = kernel_table(
        None,
        &table,
        ListFormat {
            columns: Columns::TunInfo,
            exact: false,
        },
        &|_| Annotation::Foreign,
    );
    assert!(tun.contains("wlc (flag-1,flag-3) persistent 10 mask 255.255.0.0 pe sip  # foreign\n"));
    assert!(tun.contains(
        "  -> 10.1.0.1:80                  Local   n/a           2      0          0         \n"
    ));
    assert!(tun.contains(
        "  -> 10.1.0.2:80                  Tunnel  gue:6080:+c   3      0          0         \n"
    ));
}

#[test]
fn column_precedence_is_ipvsadms() {
    assert_eq!(
        Columns::from_flags(true, true, true, true, true),
        Columns::Stats
    );
    assert_eq!(
        Columns::from_flags(false, true, true, false, false),
        Columns::Rate
    );
    assert_eq!(
        Columns::from_flags(false, false, false, true, true),
        Columns::PersistentConn
    );
    assert_eq!(
        Columns::from_flags(false, false, false, false, false),
        Columns::Default
    );
}

#[test]
fn json_has_the_same_services_owners_and_counters() {
    let table = fixture_table();
    let annotate = |k: &VirtualServiceKey| match k {
        VirtualServiceKey::Inet { port: 443, .. } => {
            Annotation::Owner("default/kubernetes:https".into())
        }
        _ => Annotation::Foreign,
    };
    let v = serde_json::to_value(json_table(Some(&INFO), &table, true, &annotate)).unwrap();
    assert_eq!(v["version"], "1.2.1");
    assert_eq!(v["connTableSize"], 4096);
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 10);
    // ipvsadm's order, as in the text.
    assert_eq!(services[0]["name"], "TCP  203.0.113.254:65535");
    assert_eq!(services[0]["foreign"], true);
    let k = &services[1];
    assert_eq!(k["name"], "TCP  10.96.0.1:443");
    assert_eq!(k["owner"], "default/kubernetes:https");
    assert_eq!(k["foreign"], false);
    assert_eq!(k["destinations"][0]["address"], "10.0.0.1");
    assert_eq!(k["destinations"][1]["forward"], "Route");
    assert_eq!(k["stats"]["conns"], 0);
    let sh = &services[2];
    assert_eq!(
        sh["flags"],
        serde_json::json!(["persistent", "sh-fallback", "sh-port"])
    );
    assert_eq!(sh["persistenceTimeout"], 60);
    assert_eq!(sh["destinations"][0]["tunnel"], "ipip");
    assert_eq!(services[9]["fwmark"], 43);
    assert_eq!(services[9]["family"], "IPv6");
    let plain = serde_json::to_value(json_table(None, &table, false, &none)).unwrap();
    assert!(plain.get("version").is_none());
    assert!(plain["services"][1].get("stats").is_none());
    assert!(plain["services"][1].get("owner").is_none());
}
