//! The reply decoders of [`nodenet::wire`] on real kernel replies: the fuzz seeds captured by
//! `fuzz/capture-seeds.py` (the Linux 6.18 build host's kernel, a fresh network namespace with `lo` up and
//! addressed, a veth pair, a `local` route for 10.96.0.0/16, one UDP flow to 127.0.0.1:9999).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn links() {
    let links: Vec<_> = seeds("rtnetlink_link")
        .iter()
        .flat_map(|d| nodenet::wire::links(d).unwrap())
        .collect();
    let names: Vec<(&str, Option<&str>, bool)> = links
        .iter()
        .map(|l| (l.name.as_deref().unwrap(), l.kind.as_deref(), l.loopback))
        .collect();
    assert_eq!(
        names,
        [
            ("lo", None, true),
            ("v1", Some("veth"), false),
            ("v0", Some("veth"), false)
        ]
    );
}

#[test]
fn addresses() {
    let addrs: Vec<String> = seeds("rtnetlink_address")
        .iter()
        .flat_map(|d| nodenet::wire::addresses(d).unwrap())
        .map(|(i, a)| format!("{i} {a}"))
        .collect();
    assert!(addrs.contains(&"1 10.0.0.1/24".to_owned()), "{addrs:?}");
    assert!(addrs.contains(&"1 fd00::1/64".to_owned()), "{addrs:?}");
}

#[test]
fn local_routes() {
    let routes: Vec<String> = seeds("rtnetlink_route")
        .iter()
        .flat_map(|d| nodenet::wire::local_routes(d).unwrap())
        .map(|r| format!("{} proto {}", r.prefix, r.protocol))
        .collect();
    assert!(
        routes.contains(&"10.96.0.0/16 proto 4".to_owned()),
        "{routes:?}"
    );
    assert!(
        routes.contains(&"10.0.0.1/32 proto 2".to_owned()),
        "{routes:?}"
    );
}

#[test]
fn conntrack_flows() {
    let flows: Vec<_> = seeds("conntrack")
        .iter()
        .flat_map(|d| nodenet::wire::conntrack_flows(d).unwrap())
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!(f.protocol, 17);
    assert_eq!(
        (f.orig.dst.to_string(), f.orig.dport),
        ("127.0.0.1".to_owned(), 9999)
    );
}

#[test]
fn any_prefix_of_a_reply_is_an_error_or_a_value_never_a_panic() {
    for target in [
        "rtnetlink_link",
        "rtnetlink_address",
        "rtnetlink_route",
        "conntrack",
    ] {
        for d in seeds(target) {
            for cut in 0..d.len() {
                let part = &d[..cut];
                let _ = nodenet::wire::links(part);
                let _ = nodenet::wire::addresses(part);
                let _ = nodenet::wire::local_routes(part);
                let _ = nodenet::wire::conntrack_flows(part);
            }
        }
    }
}

/// What the fuzzer found (`fuzz/regressions/`): each input decodes to a value or an error.
#[test]
fn fuzz_regressions_decode_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let crash = std::fs::read(dir.join("conntrack-nested-nla-length")).unwrap();
    // An nf_tables message (subsystem 10) with a nested attribute longer than its parent, then
    // 10 bytes that are no message: the message is no entry, the rest a framing error.
    assert_eq!(crash[5], 10, "the input is an nf_tables message");
    let first = usize::from(crash[0]);
    assert!(
        nodenet::wire::conntrack_flows(&crash[..first])
            .unwrap()
            .is_empty()
    );
    let err = nodenet::wire::conntrack_flows(&crash).unwrap_err();
    assert!(err.to_string().contains("trailing bytes"), "{err}");
}
