//! Byte-exact tests against traffic captured in the lab (Debian kernel 6.1.0-56-amd64, ipvsadm
//! v1.31 from the host) with an nlmon device: see `tests/capture/capture.py`, run as
//! `cargo xtask vm -- python3 crates/ipvs-netlink/tests/capture/capture.py $LAB_SHARE/capture.txt`.
//! The IPVS family id was 0x20 in that boot.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::IpAddr;

use ipvs_netlink::frame::{self, ReplyBody};
use ipvs_netlink::{
    AddressFamily, Destination, ForwardMethod, IpvsCmd, IpvsMessage, Protocol, SchedulerName,
    Service, ServiceFlags, Timeouts, VirtualServiceKey,
};

const CAPTURE: &str = include_str!("capture/ipvsadm-6.1.0-56.txt");
const IPVS_FAMILY: u16 = 0x20;

/// One captured IPVS netlink message.
struct Captured {
    command: String,
    bytes: Vec<u8>,
    flags: u16,
    seq: u32,
    msg: IpvsMessage,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Every IPVS-family message of the capture, split out of its datagram, with the ipvsadm command
/// that caused it.
fn captured() -> Vec<Captured> {
    let mut out = Vec::new();
    let mut command = String::new();
    for line in CAPTURE.lines() {
        if let Some(c) = line.strip_prefix("# ipvsadm") {
            command = format!("ipvsadm{c}");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let datagram = hex(line.split_once(' ').unwrap().1);
        let mut off = 0;
        while off + 16 <= datagram.len() {
            let len = u32::from_ne_bytes(datagram[off..off + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(datagram[off + 4..off + 6].try_into().unwrap());
            let bytes = datagram[off..off + len].to_vec();
            off += (len + 3) & !3;
            if kind != IPVS_FAMILY {
                continue;
            }
            let reply = frame::replies(&bytes).next().unwrap().unwrap();
            let ReplyBody::Message(msg) = reply.body else {
                panic!("not a message")
            };
            out.push(Captured {
                command: command.clone(),
                bytes,
                flags: reply.flags,
                seq: reply.seq,
                msg,
            });
        }
    }
    out
}

fn find(command: &str, cmd: IpvsCmd) -> Vec<Captured> {
    captured()
        .into_iter()
        .filter(|c| c.command == command && c.msg.cmd == cmd)
        .collect()
}

/// Re-encode with the captured header fields; only the port id (bytes 12..16) is not ours to set.
fn reencode(c: &Captured, msg: &IpvsMessage) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::encode(&mut buf, IPVS_FAMILY, c.flags, c.seq, msg).unwrap();
    buf[12..16].copy_from_slice(&c.bytes[12..16]);
    buf
}

#[test]
fn every_captured_message_reencodes_byte_for_byte() {
    let all = captured();
    assert!(all.len() >= 30, "capture has {} IPVS messages", all.len());
    for c in &all {
        assert_eq!(
            reencode(c, &c.msg),
            c.bytes,
            "{} {:?}",
            c.command,
            c.msg.cmd
        );
    }
}

#[test]
fn our_new_service_requests_equal_ipvsadm() {
    let cases = [
        (
            "ipvsadm -A -t 10.0.0.1:80 -s rr",
            Service::new(
                VirtualServiceKey::tcp("10.0.0.1".parse().unwrap(), 80),
                SchedulerName::rr(),
            ),
        ),
        (
            "ipvsadm -A -u [2001:db8::1]:53 -s sh -p 300 -M 64 -b sh-fallback,sh-port",
            {
                let mut s = Service::new(
                    VirtualServiceKey::udp("2001:db8::1".parse().unwrap(), 53),
                    SchedulerName::sh(),
                )
                .persistent(300);
                s.flags = s.flags | ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
                s.netmask = 64;
                s
            },
        ),
        ("ipvsadm -A -f 7 -s wlc -o", {
            let mut s = Service::new(
                VirtualServiceKey::Fwmark {
                    family: AddressFamily::Inet,
                    mark: 7,
                },
                SchedulerName::wlc(),
            );
            s.flags = ServiceFlags::ONEPACKET;
            s
        }),
    ];
    for (command, service) in cases {
        let got = find(command, IpvsCmd::NewService);
        assert_eq!(got.len(), 1, "{command}");
        let c = &got[0];
        assert_eq!(c.msg.service().unwrap(), service, "{command}: decode");
        assert_eq!(
            reencode(c, &IpvsMessage::new_service(&service)),
            c.bytes,
            "{command}: encode"
        );
    }
}

#[test]
fn our_destination_nests_equal_ipvsadm() {
    use ipvs_netlink::IpvsAttribute;
    let masq = {
        let mut d = Destination::masq("10.0.0.2".parse().unwrap(), 8080, 5);
        d.upper_threshold = 100;
        d.lower_threshold = 10;
        d
    };
    let cases = [
        (
            "ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 5 -x 100 -y 10",
            AddressFamily::Inet,
            masq,
        ),
        (
            "ipvsadm -a -u [2001:db8::1]:53 -r [2001:db8::2]:53 -g -w 0",
            AddressFamily::Inet6,
            Destination::new(
                "2001:db8::2".parse().unwrap(),
                53,
                ForwardMethod::DirectRoute,
                0,
            ),
        ),
        (
            "ipvsadm -a -f 7 -r 10.0.0.3 -i -w 2",
            AddressFamily::Inet,
            Destination::new("10.0.0.3".parse().unwrap(), 0, ForwardMethod::IPIP, 2),
        ),
    ];
    for (command, family, dest) in cases {
        let got = find(command, IpvsCmd::NewDest);
        assert_eq!(got.len(), 1, "{command}");
        let c = &got[0];
        assert_eq!(
            c.msg.destination(family).unwrap(),
            dest,
            "{command}: decode"
        );
        // ipvsadm repeats the whole service (empty scheduler) in destination requests; the
        // kernel reads only its identity, which is all we send. The destination nests match.
        let ours = IpvsMessage::new_dest(&c.msg.service_key().unwrap(), &dest);
        let nest = |m: &IpvsMessage| {
            m.attributes
                .iter()
                .find(|a| matches!(a, IpvsAttribute::Destination(_)))
                .cloned()
        };
        assert_eq!(nest(&ours), nest(&c.msg), "{command}");
        let mut theirs_dest_only = c.msg.clone();
        theirs_dest_only
            .attributes
            .retain(|a| matches!(a, IpvsAttribute::Destination(_)));
        let mut ours_dest_only = ours.clone();
        ours_dest_only
            .attributes
            .retain(|a| matches!(a, IpvsAttribute::Destination(_)));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        frame::encode(&mut a, IPVS_FAMILY, 5, 1, &theirs_dest_only).unwrap();
        frame::encode(&mut b, IPVS_FAMILY, 5, 1, &ours_dest_only).unwrap();
        assert_eq!(a, b, "{command}: destination nest bytes");
    }
}

#[test]
fn kernel_service_dump_decodes_exactly() {
    let dump = find("ipvsadm -Ln", IpvsCmd::NewService);
    assert_eq!(dump.len(), 3);
    let services: Vec<Service> = dump.iter().map(|c| c.msg.service().unwrap()).collect();
    assert!(
        dump.iter().all(|c| !c.msg.nested_flag),
        "kernel nests carry no NLA_F_NESTED"
    );
    let sh = services
        .iter()
        .find(|s| s.scheduler == SchedulerName::sh())
        .unwrap();
    assert_eq!(
        sh.key,
        VirtualServiceKey::Inet {
            protocol: Protocol::Udp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 53
        }
    );
    assert_eq!(
        sh.flags,
        ServiceFlags::PERSISTENT
            | ServiceFlags::HASHED
            | ServiceFlags::SH_FALLBACK
            | ServiceFlags::SH_PORT
    );
    assert_eq!(
        (sh.timeout, sh.netmask, sh.pe_name.as_deref()),
        (300, 64, None)
    );
    assert_eq!(sh.stats, Some(Default::default()));
    let rr = services
        .iter()
        .find(|s| s.scheduler == SchedulerName::rr())
        .unwrap();
    assert_eq!(
        rr.key,
        VirtualServiceKey::tcp("10.0.0.1".parse().unwrap(), 80)
    );
    assert_eq!(
        (rr.flags, rr.timeout, rr.netmask),
        (ServiceFlags::HASHED, 0, 32)
    );
    let fwm = services
        .iter()
        .find(|s| s.scheduler == SchedulerName::wlc())
        .unwrap();
    assert_eq!(
        fwm.key,
        VirtualServiceKey::Fwmark {
            family: AddressFamily::Inet,
            mark: 7
        }
    );
    assert_eq!(fwm.flags, ServiceFlags::HASHED | ServiceFlags::ONEPACKET);
}

#[test]
fn kernel_destination_dump_decodes_exactly() {
    // The capture holds the dumps of the TCP and UDP services (the packet socket missed the
    // fwmark one; its tunnel destination is covered by the NEW_DEST request above).
    let dests = find("ipvsadm -Ln", IpvsCmd::NewDest);
    assert_eq!(dests.len(), 2);
    let v4 = dests[0].msg.destination(AddressFamily::Inet).unwrap();
    assert_eq!(v4.addr, "10.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(
        (v4.port, v4.forward, v4.weight),
        (8080, ForwardMethod::Masquerade, 5)
    );
    assert_eq!((v4.upper_threshold, v4.lower_threshold), (100, 10));
    assert_eq!(
        (v4.active_conns, v4.inactive_conns, v4.persistent_conns),
        (0, 0, 0)
    );
    assert_eq!(v4.stats, Some(Default::default()));
    let v6 = dests[1].msg.destination(AddressFamily::Inet6).unwrap();
    assert_eq!(
        (v6.addr, v6.port, v6.forward, v6.weight),
        (
            "2001:db8::2".parse().unwrap(),
            53,
            ForwardMethod::DirectRoute,
            0
        )
    );
    assert_eq!(v6.stats, Some(Default::default()));
}

#[test]
fn kernel_info_and_config_decode_exactly() {
    let info = find("ipvsadm -Ln", IpvsCmd::SetInfo);
    let i = info[0].msg.info().unwrap();
    assert_eq!((i.version_triple(), i.conn_tab_size), ((1, 2, 1), 4096));
    let config = find("ipvsadm -Ln --timeout", IpvsCmd::SetConfig);
    assert_eq!(
        config[0].msg.timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
    // Our requests for these are ipvsadm's, byte for byte.
    let get_info = find("ipvsadm -Ln", IpvsCmd::GetInfo);
    assert_eq!(
        reencode(&get_info[0], &IpvsMessage::get_info()),
        get_info[0].bytes
    );
    let get_config = find("ipvsadm -Ln --timeout", IpvsCmd::GetConfig);
    assert_eq!(
        reencode(&get_config[0], &IpvsMessage::get_config()),
        get_config[0].bytes
    );
    let dump = find("ipvsadm -Ln", IpvsCmd::GetService);
    assert_eq!(
        reencode(&dump[0], &IpvsMessage::dump_services()),
        dump[0].bytes
    );
    // GET_DEST: ipvsadm sends exactly the service identity, as we do.
    for c in find("ipvsadm -Ln", IpvsCmd::GetDest) {
        let key = c.msg.service_key().unwrap();
        assert_eq!(reencode(&c, &IpvsMessage::dump_dests(&key)), c.bytes);
    }
}
