//! Proves the kernel lab is what kernel tests assume: real IPVS, dummy links, ipvsadm.
//! Runs only inside the lab (`cargo xtask test`); outside it there is no IPVS to find.

use lab_kit::enter_fresh_netns;
use lab_kit::process::run;
use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::protocols::NETLINK_GENERIC;
use netlink_sys::{Socket, SocketAddr};

/// Resolve a generic netlink family by name, as every IPVS client must first.
fn genl_family_id(name: &str) -> Result<u16, String> {
    let mut socket = Socket::new(NETLINK_GENERIC).map_err(|e| e.to_string())?;
    socket.bind_auto().map_err(|e| e.to_string())?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| e.to_string())?;
    let mut genl = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
    });
    genl.finalize();
    let mut msg = NetlinkMessage::from(genl);
    msg.header.flags = NLM_F_REQUEST;
    msg.finalize();
    let mut tx = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut tx);
    socket.send(&tx, 0).map_err(|e| e.to_string())?;
    let mut rx = Vec::with_capacity(8192);
    socket.recv(&mut rx, 0).map_err(|e| e.to_string())?;
    let reply =
        NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&rx).map_err(|e| e.to_string())?;
    match reply.payload {
        NetlinkPayload::InnerMessage(genl) => genl
            .payload
            .nlas
            .iter()
            .find_map(|nla| match nla {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| "reply without a family id".to_string()),
        NetlinkPayload::Error(err) => Err(format!("kernel said: {err:?}")),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn ipvs_generic_netlink_family_resolves() {
    enter_fresh_netns();
    let id = genl_family_id("IPVS").expect("the IPVS generic netlink family must exist in the lab");
    assert!(
        id >= 0x10,
        "generic netlink family ids start at GENL_MIN_ID (16), got {id}"
    );
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn dummy_link_can_be_created_in_a_fresh_netns() {
    enter_fresh_netns();
    run("ip", &["link", "add", "kube-ipvs0", "type", "dummy"], None);
    let shown = run("ip", &["-o", "link", "show", "kube-ipvs0"], None);
    assert!(shown.contains("kube-ipvs0"), "{shown}");
    // A fresh namespace has only loopback and what we made: the host's links are not here.
    let all = run("ip", &["-o", "link", "show"], None);
    assert_eq!(all.lines().count(), 2, "{all}");
}

#[test]
#[ignore = "needs IPVS: cargo xtask test"]
fn ipvsadm_lists_and_programs_the_table() {
    enter_fresh_netns();
    let empty = run("ipvsadm", &["-Ln"], None);
    assert!(empty.starts_with("IP Virtual Server version"), "{empty}");
    run("ipvsadm", &["-A", "-t", "10.96.0.1:443", "-s", "rr"], None);
    run(
        "ipvsadm",
        &["-a", "-t", "10.96.0.1:443", "-r", "10.0.0.1:6443", "-m"],
        None,
    );
    let table = run("ipvsadm", &["-Ln"], None);
    assert!(table.contains("TCP  10.96.0.1:443 rr"), "{table}");
    assert!(table.contains("-> 10.0.0.1:6443"), "{table}");
}
