//! Kernel tests of the ipset client, each in a fresh network namespace (root needed):
//! `cargo test -p nodenet --test ipset -- --ignored`. They cross-check with the `ipset` and
//! `iptables` CLIs, which run in the test thread's namespace.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use lab_kit::enter_fresh_netns;
use lab_kit::process::run;
use nodenet::ipset::constants::{
    IPSET_ERR_COMMENT, IPSET_ERR_EXIST, IPSET_ERR_HASH_FULL, IPSET_ERR_TYPE_MISMATCH,
};
use nodenet::ipset::*;
use nodenet::{AddressFamily, Errno};

/// A client with a timeout generous enough for the emulated lab (ipset work is ~600x
/// slower there than natively).
async fn client() -> IpsetClient {
    let config = Config {
        timeout: std::time::Duration::from_secs(120),
        ..Config::default()
    };
    IpsetClient::connect_with(config).await.unwrap()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn ipport(ip: IpAddr, proto: Protocol, port: u16) -> Entry {
    Entry::IpPort { ip, proto, port }
}

/// `add` lines of `ipset save` for one set, sorted.
fn saved_adds(set: &str) -> Vec<String> {
    let prefix = format!("add {set} ");
    let mut lines: Vec<String> = run("ipset", &["save", set], None)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect();
    lines.sort();
    lines
}

fn sorted_display<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<String> {
    let mut v: Vec<String> = entries.into_iter().map(ToString::to_string).collect();
    v.sort();
    v
}

fn sample_sets() -> Vec<(CreateSpec, Vec<Entry>)> {
    let mut kip = CreateSpec::hash("KUBE-CLUSTER-IP", SetType::HashIpPort, AddressFamily::Inet);
    kip.hashsize = Some(1024);
    kip.maxelem = Some(65536);
    let v6: IpAddr = "fd00::10".parse().unwrap();
    vec![
        (
            kip,
            vec![
                ipport(v4(10, 96, 0, 10), Protocol::Tcp, 53),
                ipport(v4(10, 96, 0, 10), Protocol::Udp, 53),
                ipport(v4(10, 96, 0, 1), Protocol::Sctp, 443),
            ],
        ),
        (
            CreateSpec::hash(
                "KUBE-6-CLUSTER-IP",
                SetType::HashIpPort,
                AddressFamily::Inet6,
            ),
            vec![ipport(v6, Protocol::Tcp, 80)],
        ),
        (
            CreateSpec::hash("KUBE-LOOP-BACK", SetType::HashIpPortIp, AddressFamily::Inet),
            vec![Entry::IpPortIp {
                ip: v4(10, 0, 0, 5),
                proto: Protocol::Tcp,
                port: 8080,
                ip2: v4(10, 0, 0, 5),
            }],
        ),
        (
            CreateSpec::hash(
                "KUBE-LOAD-BALANCER-SOURCE-CIDR",
                SetType::HashIpPortNet,
                AddressFamily::Inet,
            ),
            vec![
                Entry::IpPortNet {
                    ip: v4(1, 2, 3, 4),
                    proto: Protocol::Tcp,
                    port: 80,
                    net: "192.168.0.0/16".parse().unwrap(),
                },
                Entry::IpPortNet {
                    ip: v4(1, 2, 3, 4),
                    proto: Protocol::Tcp,
                    port: 80,
                    net: "10.1.2.3/32".parse().unwrap(),
                },
            ],
        ),
        (
            CreateSpec::hash("KUBE-IPVS-IPS", SetType::HashIp, AddressFamily::Inet),
            vec![Entry::Ip(v4(10, 96, 0, 1))],
        ),
        (
            CreateSpec::hash("TEST-NET", SetType::HashNet, AddressFamily::Inet),
            vec![
                Entry::Net("10.0.0.0/8".parse().unwrap()),
                Entry::Net("172.16.0.1/32".parse().unwrap()),
            ],
        ),
        (
            CreateSpec::bitmap_port("KUBE-NODE-PORT-TCP", 0, 65535),
            vec![Entry::Port(30080), Entry::Port(32000)],
        ),
    ]
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn ipset_interop_our_sets_shown_by_cli() {
    enter_fresh_netns();
    let mut c = client().await;
    assert_eq!(c.protocol(), 7);
    for (spec, entries) in sample_sets() {
        c.create(&spec).await.unwrap();
        assert_eq!(
            c.add_batch(&spec.name, &entries).await.unwrap(),
            entries.len()
        );
        assert_eq!(
            saved_adds(&spec.name),
            sorted_display(&entries),
            "set {}",
            spec.name
        );
    }
    let save = run("ipset", &["save"], None);
    assert!(
        save.contains(
            "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 "
        ),
        "{save}"
    );
    assert!(
        save.contains("create KUBE-6-CLUSTER-IP hash:ip,port family inet6 "),
        "{save}"
    );
    assert!(
        save.contains("create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\n"),
        "{save}"
    );

    // Comments and single add.
    let mut spec = CreateSpec::hash("WITH-COMMENT", SetType::HashIp, AddressFamily::Inet);
    spec.comment = true;
    c.create(&spec).await.unwrap();
    c.add_with_comment(
        "WITH-COMMENT",
        &Entry::Ip(v4(10, 1, 1, 1)),
        "default/kubernetes:https",
    )
    .await
    .unwrap();
    assert_eq!(
        saved_adds("WITH-COMMENT"),
        ["10.1.1.1 comment \"default/kubernetes:https\""]
    );
    let listed = c.list("WITH-COMMENT").await.unwrap();
    assert_eq!(
        listed.members[0].comment.as_deref(),
        Some("default/kubernetes:https")
    );
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn ipset_interop_cli_sets_read_by_us() {
    enter_fresh_netns();
    let mut script = String::new();
    for (spec, entries) in sample_sets() {
        let mut create = format!("create {} {}", spec.name, spec.set_type);
        if spec.set_type == SetType::BitmapPort {
            let (a, b) = spec.port_range.unwrap();
            create += &format!(" range {a}-{b}");
        } else {
            let family = match spec.family {
                Some(AddressFamily::Inet6) => "inet6",
                _ => "inet",
            };
            create += &format!(" family {family} hashsize 4096 maxelem 131072");
        }
        script += &create;
        script += "\n";
        for e in &entries {
            script += &format!("add {} {e}\n", spec.name);
        }
    }
    run("ipset", &["restore"], Some(&script));

    let mut c = client().await;
    let names = c.list_names().await.unwrap();
    let want_names: Vec<String> = sample_sets().into_iter().map(|(s, _)| s.name).collect();
    assert_eq!(names, want_names);
    for (spec, entries) in sample_sets() {
        let set = c.list(&spec.name).await.unwrap();
        let header = set.header.unwrap();
        assert_eq!(header.set_type, spec.set_type);
        if spec.set_type == SetType::BitmapPort {
            assert_eq!(header.port_range, spec.port_range);
        } else {
            assert_eq!(header.family, spec.family);
            assert_eq!(header.hashsize, Some(4096));
            assert_eq!(header.maxelem, Some(131072));
        }
        assert_eq!(header.elements as usize, entries.len());
        let got: BTreeSet<Entry> = set.members.iter().map(|m| m.entry).collect();
        let want: BTreeSet<Entry> = entries.iter().map(|e| e.normalized()).collect();
        assert_eq!(got, want, "set {}", spec.name);
        assert!(c.test(&spec.name, &entries[0]).await.unwrap());
    }
    assert_eq!(c.list_all().await.unwrap().len(), want_names.len());
}

/// A batch of more entries than three 64 KiB messages hold, in one call (the agent's first sync
/// at 10,000 Services adds 20,000 `KUBE-CLUSTER-IP` members): every entry lands. The transport
/// once packed a fourth message into the datagram, which `sendmsg` refused (EMSGSIZE).
#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn a_batch_larger_than_the_send_buffer_lands_whole() {
    enter_fresh_netns();
    let mut c = client().await;
    let mut spec = CreateSpec::hash("KUBE-CLUSTER-IP", SetType::HashIpPort, AddressFamily::Inet);
    spec.maxelem = Some(65536);
    c.create(&spec).await.unwrap();
    let entries: Vec<Entry> = (0..20_000u32)
        .map(|i| {
            let [_, _, b, d] = i.to_be_bytes();
            ipport(v4(10, 96, b, d), Protocol::Tcp, 80 + u16::from(b % 2))
        })
        .collect();
    assert_eq!(c.add_batch(&spec.name, &entries).await.unwrap(), 20_000);
    assert_eq!(c.members(&spec.name).await.unwrap().len(), 20_000);
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn ipset_sync_and_replace() {
    enter_fresh_netns();
    let mut c = client().await;
    let mut spec = CreateSpec::hash("SYNCED", SetType::HashIpPort, AddressFamily::Inet);
    spec.maxelem = Some(200_000);
    c.create(&spec).await.unwrap();
    let entry = |i: u32| {
        ipport(
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            Protocol::Tcp,
            80,
        )
    };
    // 5,000 members: several batches out, several dump parts back.
    let wanted: BTreeSet<Entry> = (0..5_000).map(entry).collect();
    assert_eq!(
        c.sync("SYNCED", &wanted).await.unwrap(),
        SyncStats {
            added: 5_000,
            removed: 0
        }
    );
    assert_eq!(c.members("SYNCED").await.unwrap(), wanted);
    assert_eq!(
        c.sync("SYNCED", &wanted).await.unwrap(),
        SyncStats::default(),
        "second sync is a no-op"
    );

    // Change 4%: drop 100, add 100.
    let changed: BTreeSet<Entry> = (100..5_100).map(entry).collect();
    assert_eq!(
        c.sync_from("SYNCED", &wanted, &changed).await.unwrap(),
        SyncStats {
            added: 100,
            removed: 100
        }
    );
    assert_eq!(c.members("SYNCED").await.unwrap(), changed);

    // The same through a TrackedSet: only the pending change is programmed.
    let mut tracked = TrackedSet::new("SYNCED", changed.clone());
    tracked.remove(&entry(100));
    tracked.insert(entry(30_000));
    assert_eq!(
        tracked.apply(&mut c).await.unwrap(),
        SyncStats {
            added: 1,
            removed: 1
        }
    );
    assert_eq!(&c.members("SYNCED").await.unwrap(), tracked.applied());
    assert_eq!(tracked.apply(&mut c).await.unwrap(), SyncStats::default());

    // Replace with a disjoint set: exact result, temporary set gone.
    let replaced: BTreeSet<Entry> = (50_000..50_500).map(entry).collect();
    c.replace("SYNCED", &replaced).await.unwrap();
    assert_eq!(c.members("SYNCED").await.unwrap(), replaced);
    assert_eq!(c.list_names().await.unwrap(), ["SYNCED"]);
    assert_eq!(c.header("SYNCED").await.unwrap().maxelem, Some(200_000));

    // The CLI agrees.
    assert_eq!(saved_adds("SYNCED"), sorted_display(&replaced));

    // A sync with entries of the wrong type is refused before touching the kernel.
    let wrong: BTreeSet<Entry> = [Entry::Port(80)].into();
    assert!(matches!(
        c.sync("SYNCED", &wrong).await,
        Err(IpsetError::Encode { .. })
    ));
    assert_eq!(c.members("SYNCED").await.unwrap(), replaced);
}

/// Packets counted by our `--match-set` rule in OUTPUT.
fn matched_packets(set: &str) -> u64 {
    let save = run("iptables-save", &["-c", "-t", "filter"], None);
    let line = save
        .lines()
        .find(|l| l.contains(&format!("--match-set {set} ")))
        .expect("rule present");
    let counters = line.trim_start_matches('[').split(']').next().unwrap();
    counters.split(':').next().unwrap().parse().unwrap()
}

fn send_udp(port: u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"x", ("127.0.0.1", port)).unwrap();
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn ipset_swap_under_iptables_reference() {
    enter_fresh_netns();
    let mut c = client().await;
    c.create(&CreateSpec::hash(
        "KUBE-REF",
        SetType::HashIpPort,
        AddressFamily::Inet,
    ))
    .await
    .unwrap();
    let lo = v4(127, 0, 0, 1);
    c.add("KUBE-REF", &ipport(lo, Protocol::Udp, 1111))
        .await
        .unwrap();
    run(
        "iptables",
        &[
            "-A",
            "OUTPUT",
            "-p",
            "udp",
            "-m",
            "set",
            "--match-set",
            "KUBE-REF",
            "dst,dst",
            "-j",
            "ACCEPT",
        ],
        None,
    );
    assert_eq!(c.header("KUBE-REF").await.unwrap().references, 1);

    send_udp(1111);
    send_udp(2222);
    assert_eq!(matched_packets("KUBE-REF"), 1);

    // Referenced: rename and destroy refuse, replace (swap) works.
    assert!(matches!(
        c.rename("KUBE-REF", "OTHER").await,
        Err(IpsetError::InUse { .. })
    ));
    assert!(matches!(
        c.destroy("KUBE-REF").await,
        Err(IpsetError::InUse { .. })
    ));
    c.replace("KUBE-REF", &[ipport(lo, Protocol::Udp, 2222)].into())
        .await
        .unwrap();
    assert_eq!(
        c.header("KUBE-REF").await.unwrap().references,
        1,
        "the reference stays with the name"
    );

    send_udp(2222);
    assert_eq!(
        matched_packets("KUBE-REF"),
        2,
        "the rule matches the new member"
    );
    send_udp(1111);
    assert_eq!(matched_packets("KUBE-REF"), 2, "and no longer the old one");
    assert_eq!(c.list_names().await.unwrap(), ["KUBE-REF"]);
}

#[tokio::test]
#[ignore = "needs root and netns: cargo xtask test"]
async fn ipset_errors_are_typed() {
    enter_fresh_netns();
    let mut c = client().await;
    let spec = CreateSpec::hash("ERR", SetType::HashIp, AddressFamily::Inet);
    c.create(&spec).await.unwrap();
    let e = c.create(&spec).await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::SetExists {
                op: IpsetOp::Create,
                errno: Errno::EEXIST,
                ..
            }
        ),
        "{e}"
    );
    c.ensure(&spec).await.unwrap();

    let e = c.destroy("MISSING").await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::SetMissing {
                op: IpsetOp::Destroy,
                ..
            }
        ),
        "{e}"
    );
    let e = c.list("MISSING").await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::SetMissing {
                op: IpsetOp::List,
                ..
            }
        ),
        "{e}"
    );
    let e = c
        .add("MISSING", &Entry::Ip(v4(1, 1, 1, 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::SetMissing {
                op: IpsetOp::Add,
                ..
            }
        ),
        "{e}"
    );

    let one = Entry::Ip(v4(10, 0, 0, 1));
    c.add("ERR", &one).await.unwrap();
    let e = c.add("ERR", &one).await.unwrap_err();
    assert!(
        matches!(&e, IpsetError::ElementExists { errno: IPSET_ERR_EXIST, entry, .. } if entry == "10.0.0.1"),
        "{e}"
    );
    assert!(e.to_string().contains("IPSET_ERR_EXIST"), "{e}");
    c.del("ERR", &one).await.unwrap();
    let e = c.del("ERR", &one).await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::ElementMissing {
                op: IpsetOp::Del,
                ..
            }
        ),
        "{e}"
    );
    assert!(!c.test("ERR", &one).await.unwrap());

    // Wrong entry kind for the type: the kernel's protocol error.
    let e = c.add("ERR", &Entry::Port(80)).await.unwrap_err();
    assert!(matches!(e, IpsetError::Protocol { .. }), "{e}");
    // Wrong family.
    let e = c
        .add("ERR", &Entry::Ip("fd00::1".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(e.errno().is_some(), "{e}");

    c.create(&CreateSpec::hash(
        "ERR-NET",
        SetType::HashNet,
        AddressFamily::Inet,
    ))
    .await
    .unwrap();
    let e = c.swap("ERR", "ERR-NET").await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::TypeMismatch {
                op: IpsetOp::Swap,
                errno: IPSET_ERR_TYPE_MISMATCH,
                ..
            }
        ),
        "{e}"
    );
    let e = c.rename("ERR", "ERR-NET").await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::SetExists {
                op: IpsetOp::Rename,
                ..
            }
        ),
        "{e}"
    );
    let e = c.swap("ERR", "MISSING").await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::SetMissing {
                op: IpsetOp::Swap,
                ..
            }
        ),
        "{e}"
    );

    // A comment on a set without comment support.
    let e = c.add_with_comment("ERR", &one, "x").await.unwrap_err();
    assert!(
        matches!(
            e,
            IpsetError::Kernel {
                errno: IPSET_ERR_COMMENT,
                ..
            }
        ),
        "{e}"
    );

    // A full set: the batch error names the first entry that did not fit.
    let mut small = CreateSpec::hash("SMALL", SetType::HashIp, AddressFamily::Inet);
    small.maxelem = Some(4);
    c.create(&small).await.unwrap();
    let entries: Vec<Entry> = (1..=10).map(|i| Entry::Ip(v4(10, 0, 1, i))).collect();
    let e = c.add_batch("SMALL", &entries).await.unwrap_err();
    assert!(
        matches!(&e, IpsetError::Kernel { errno: IPSET_ERR_HASH_FULL, entry: Some(entry), .. } if entry == "10.0.1.5"),
        "{e}"
    );

    // Names the kernel cannot take are refused locally.
    let long = "X".repeat(32);
    let e = c
        .create(&CreateSpec::hash(
            long,
            SetType::HashIp,
            AddressFamily::Inet,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, IpsetError::Encode { .. }), "{e}");

    // Renaming and flushing work; the client stays usable after every error.
    c.rename("ERR", "ERR2").await.unwrap();
    c.flush("ERR2").await.unwrap();
    c.destroy("ERR2").await.unwrap();
}
