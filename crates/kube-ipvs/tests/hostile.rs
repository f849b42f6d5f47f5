//! Hostile input: objects no API server would accept (the file source has none in front of it),
//! names that would collide or forge output. A bad object costs at most that object: its
//! rejection names the field, and every other object is programmed as usual.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{cfg, engine, rejected, table};
use kube_ipvs::render::{PlanReport, plan_text};

fn svc(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{namespace: {ns:?}, name: {name:?}}}\nspec: {spec}\n"
    )
}

fn slice(name: &str, service: &str, addr_type: &str, addrs: &[&str]) -> String {
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{addresses: [{a:?}]}}"))
        .collect();
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{namespace: d, name: {name}, \
         labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: {addr_type}\n\
         ports: [{{port: 8080}}]\nendpoints: [{}]\n",
        eps.join(", ")
    )
}

const GOOD: &str = "{clusterIP: 10.96.0.10, ports: [{port: 80}]}";

#[test]
fn addresses_no_api_server_accepts_are_rejected_with_their_field() {
    let yaml = [
        svc("d", "good", GOOD),
        slice("good-1", "good", "IPv4", &["10.1.0.1"]),
        svc(
            "d",
            "ext-any",
            "{clusterIP: 10.96.0.11, externalIPs: [0.0.0.0], ports: [{port: 80}]}",
        ),
        svc(
            "d",
            "ext-bcast",
            "{clusterIP: 10.96.0.12, externalIPs: [1.2.3.4, 255.255.255.255], ports: [{port: 80}]}",
        ),
        svc(
            "d",
            "ext-mcast",
            "{clusterIP: 10.96.0.13, externalIPs: [239.1.2.3], ports: [{port: 80}]}",
        ),
        svc(
            "d",
            "mapped",
            "{clusterIPs: [\"::ffff:10.96.0.14\"], ipFamilies: [IPv6], ports: [{port: 80}]}",
        ),
        svc("d", "ep", "{clusterIP: 10.96.0.15, ports: [{port: 80}]}"),
        slice("ep-any", "ep", "IPv4", &["10.1.0.9", "0.0.0.0"]),
        slice("ep-lo", "ep", "IPv4", &["127.0.0.1"]),
        slice("ep-mcast", "ep", "IPv4", &["224.0.0.5"]),
        slice("ep-bcast", "ep", "IPv4", &["255.255.255.255"]),
        slice("ep-ok", "ep", "IPv4", &["10.1.0.7"]),
    ]
    .concat();
    let e = engine(cfg(), &yaml);
    assert_eq!(
        table(&e),
        [
            "TCP 10.96.0.10:80 rr -> 10.1.0.1:8080",
            "TCP 10.96.0.15:80 rr -> 10.1.0.7:8080",
        ],
        "only the good Services and the good slice are programmed"
    );
    assert_eq!(
        rejected(&e),
        [
            "Service d/ext-any: spec.externalIPs[0]: \"0.0.0.0\" may not be unspecified (0.0.0.0)",
            "Service d/ext-bcast: spec.externalIPs[1]: \"255.255.255.255\" may not be the broadcast address (255.255.255.255)",
            "Service d/ext-mcast: spec.externalIPs[0]: \"239.1.2.3\" may not be multicast (224.0.0.0/4)",
            "Service d/mapped: spec.clusterIPs[0]: \"::ffff:10.96.0.14\" may not be an IPv4-mapped IPv6 address (::ffff:0:0/96): write the IPv4 address",
            "EndpointSlice d/ep-any: endpoints[1].addresses[0]: \"0.0.0.0\" may not be unspecified (0.0.0.0)",
            "EndpointSlice d/ep-bcast: endpoints[0].addresses[0]: \"255.255.255.255\" may not be the broadcast address (255.255.255.255)",
            "EndpointSlice d/ep-lo: endpoints[0].addresses[0]: \"127.0.0.1\" may not be in the loopback range (127.0.0.0/8)",
            "EndpointSlice d/ep-mcast: endpoints[0].addresses[0]: \"224.0.0.5\" may not be multicast (224.0.0.0/4)",
        ]
    );
}

/// Kubernetes still stores addresses written before 1.23 with leading zeros, and kube-proxy
/// parses them as decimal (`ParseIPSloppy`): so do we, rather than dropping the Service.
#[test]
fn legacy_leading_zero_ipv4_is_read_as_decimal() {
    let yaml = svc(
        "d",
        "old",
        "{clusterIP: 010.096.000.012, ports: [{port: 80}]}",
    ) + &slice("old-1", "old", "IPv4", &["010.001.000.001"]);
    let e = engine(cfg(), &yaml);
    assert_eq!(table(&e), ["TCP 10.96.0.12:80 rr -> 10.1.0.1:8080"]);
    assert!(rejected(&e).is_empty());
}

/// `bad/x` + `y` and `bad` + `x/y` would both be the key `bad/x/y`: neither is a name the API
/// server allows, so neither is programmed, and neither takes the other's place.
#[test]
fn names_are_validated_so_keys_cannot_collide() {
    let yaml = svc("bad/x", "y", GOOD)
        + &svc("bad", "x/y", "{clusterIP: 10.96.0.11, ports: [{port: 80}]}")
        + &svc("d", "Upper", "{clusterIP: 10.96.0.12, ports: [{port: 80}]}")
        + &svc("d", "ok", "{clusterIP: 10.96.0.13, ports: [{port: 80}]}");
    let e = engine(cfg(), &yaml);
    assert_eq!(table(&e), ["TCP 10.96.0.13:80 rr ->"]);
    let r = rejected(&e);
    assert_eq!(r.len(), 3, "{r:#?}");
    assert!(r[0].starts_with("Service bad/x/y: metadata.name: invalid name \"x/y\""));
    assert!(r[1].starts_with("Service bad/x/y: metadata.namespace: invalid name \"bad/x\""));
    assert!(r[2].starts_with("Service d/Upper: metadata.name: invalid name \"Upper\""));
}

/// A port name with a newline would print `-> 6.6.6.6:80` as if it were a real server of the
/// Service in `plan`'s ipvsadm layout. It is rejected (not a DNS label), and the report that
/// names the rejected object prints the name escaped.
#[test]
fn a_name_cannot_forge_a_line_of_the_plan() {
    let forged = "http\\n  -> 6.6.6.6:80                   Masq    1      0          0";
    let yaml = svc(
        "d",
        "web",
        &format!("{{clusterIP: 10.96.0.10, ports: [{{name: \"{forged}\", port: 80}}]}}"),
    ) + &svc("d", "evil\n  -> 6.6.6.6:80", GOOD);
    let e = engine(cfg(), &yaml);
    assert!(table(&e).is_empty());
    let report = PlanReport::new(e.desired(), e.index(), Default::default());
    let text = plan_text(&report, true);
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("-> 6.6.6.6")),
        "{text}"
    );
    assert!(
        text.contains("Service d/evil\\n  -> 6.6.6.6:80: metadata.name: invalid name"),
        "{text}"
    );
}

#[test]
fn two_ports_with_one_number_and_protocol_are_rejected_not_merged() {
    let yaml = svc(
        "d",
        "dup",
        "{clusterIP: 10.96.0.10, ports: [{name: a, port: 80}, {name: b, port: 80, protocol: TCP}, {name: c, port: 80, protocol: UDP}]}",
    );
    let e = engine(cfg(), &yaml);
    assert!(table(&e).is_empty());
    assert_eq!(
        rejected(&e),
        ["Service d/dup: spec.ports[1]: duplicate port 80/TCP"]
    );
}

/// The API server requires an addressType and accepts IPv4, IPv6 and FQDN, case-sensitive
/// (`validateAddressType`); the deprecated `IP` only on update, so old slices keep it. Stock
/// programs IPv4 and IPv6 slices only and ignores every other type without a word
/// (`supportedEndpointSliceAddressTypes`). So a lower-case or missing type (a file's mistake)
/// is not programmed, as by stock, and is rejected saying what is wrong, never taken for FQDN;
/// `IP` and FQDN are skipped.
#[test]
fn an_unknown_or_missing_address_type_is_rejected_not_taken_for_fqdn() {
    let missing = slice("web-3", "web", "IPv4", &["10.1.0.3"]).replace("addressType: IPv4\n", "");
    let yaml = svc("d", "web", GOOD)
        + &slice("web-1", "web", "ipv4", &["10.1.0.1"])
        + &slice("web-2", "web", "FQDN", &["example.com"])
        + &missing
        + &slice("web-4", "web", "IP", &["10.1.0.4"])
        + &slice("web-5", "web", "IPv4", &["10.1.0.5"]);
    let e = engine(cfg(), &yaml);
    assert_eq!(table(&e), ["TCP 10.96.0.10:80 rr -> 10.1.0.5:8080"]);
    assert_eq!(
        rejected(&e),
        [
            "EndpointSlice d/web-1: addressType: unsupported value \"ipv4\" (IPv4, IPv6 or FQDN)",
            "EndpointSlice d/web-3: addressType: required (IPv4, IPv6 or FQDN)",
        ]
    );
    let skipped: Vec<String> = e
        .index()
        .skipped()
        .iter()
        .map(|(o, why)| format!("{o}: {why}"))
        .collect();
    assert_eq!(
        skipped,
        [
            "EndpointSlice d/web-2: addressType FQDN",
            "EndpointSlice d/web-4: addressType IP (deprecated; stock reads IPv4 and IPv6)",
        ]
    );
}
