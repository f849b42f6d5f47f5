//! Byte-exact tests against messages the `ipset` CLI (v7.17, protocol 7) exchanged with the
//! host kernel (Linux 6.18.44), captured with `capture.sh` in this directory (strace hex dumps
//! of sendto/recvmsg inside `unshare -n`). Our requests must be the CLI's bytes; the kernel's
//! replies must decode to the values the CLI printed.

use netlink_transport::Errno;

use crate::ipset::constants::{IPSET_ERR_EXIST, IPSET_ERR_HASH_FULL, IPSET_ERR_TYPE_MISMATCH};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::AddressFamily;
use crate::ipset::*;

const CAPTURED: &str = include_str!("captured.txt");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The (direction, bytes) exchanged by one CLI invocation, e.g. `block("add kip 10.96.0.10,tcp:53")`.
fn block(cmd: &str) -> Vec<(&'static str, Vec<u8>)> {
    let header = format!("# {cmd}");
    let mut lines = CAPTURED.lines().skip_while(|l| *l != header);
    assert_eq!(
        lines.next(),
        Some(header.as_str()),
        "capture of `{cmd}` missing"
    );
    lines
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            let (dir, hex) = l.split_once(' ').unwrap();
            (if dir == "send" { "send" } else { "recv" }, unhex(hex))
        })
        .collect()
}

/// The command's main request (the last one sent) and everything received after it.
fn main_exchange(cmd: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let msgs = block(cmd);
    let last_send = msgs.iter().rposition(|(d, _)| *d == "send").unwrap();
    let replies = msgs[last_send + 1..]
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    (msgs[last_send].1.clone(), replies)
}

fn seq_of(msg: &[u8]) -> u32 {
    u32::from_ne_bytes(msg[8..12].try_into().unwrap())
}

/// Asserts we emit exactly the CLI's bytes for `req`, and parse them back to `req`.
fn assert_exact(cmd: &str, req: Request) -> Vec<Vec<u8>> {
    let (sent, replies) = main_exchange(cmd);
    let ours = req.emit(seq_of(&sent), 7).unwrap();
    assert_eq!(
        hex(&ours),
        hex(&sent),
        "`ipset {cmd}`: our bytes differ from the CLI's"
    );
    let (seq, parsed) = Request::parse(&sent).unwrap();
    assert_eq!(seq, seq_of(&sent));
    assert_eq!(parsed, req, "`ipset {cmd}`: CLI bytes parse differently");
    replies
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn single_reply(replies: &[Vec<u8>]) -> Reply {
    assert_eq!(replies.len(), 1);
    parse_reply(&replies[0]).unwrap().1
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn create(spec: CreateSpec, revision: u8) -> Request {
    Request::Create {
        spec,
        revision,
        exist_ok: false,
    }
}

fn add(name: &str, entry: Entry, comment: Option<&str>) -> Request {
    Request::Adt {
        op: AdtOp::Add,
        name: name.into(),
        exist_ok: false,
        members: vec![Member {
            entry,
            comment: comment.map(str::to_string),
        }],
        batch: None,
    }
}

#[test]
fn protocol_and_type_negotiation() {
    let msgs = block("create kip hash:ip,port family inet hashsize 1024 maxelem 65536");
    // PROTOCOL request: attribute PROTOCOL=7 only, NLM_F_REQUEST.
    assert_eq!(
        hex(&Request::Protocol.emit(seq_of(&msgs[0].1), 7).unwrap()),
        hex(&msgs[0].1)
    );
    // Kernel: protocol 7, min 6.
    assert_eq!(
        parse_reply(&msgs[1].1).unwrap().1,
        Reply::Protocol {
            version: 7,
            min: Some(6)
        }
    );
    let ty = Request::Type {
        set_type: SetType::HashIpPort,
        family: Some(AddressFamily::Inet),
    };
    assert_eq!(
        hex(&ty.emit(seq_of(&msgs[2].1), 7).unwrap()),
        hex(&msgs[2].1)
    );
}

#[test]
fn type_reply_gives_revision_range() {
    // "create kip2 hash:ip": TYPE reply says revisions 0..=6.
    let msgs = block("create kip2 hash:ip");
    let reply = parse_reply(&msgs[3].1).unwrap().1;
    assert_eq!(
        reply,
        Reply::Type {
            set_type: SetType::HashIp,
            family: Some(AddressFamily::Inet),
            revision: 6,
            revision_min: 0
        }
    );
}

#[test]
fn create_requests_are_byte_exact() {
    let mut kip = CreateSpec::hash("kip", SetType::HashIpPort, AddressFamily::Inet);
    kip.hashsize = Some(1024);
    kip.maxelem = Some(65536);
    let r = assert_exact(
        "create kip hash:ip,port family inet hashsize 1024 maxelem 65536",
        create(kip, 7),
    );
    assert_eq!(single_reply(&r), Reply::Ack);

    let mut k6 = CreateSpec::hash("k6", SetType::HashIpPort, AddressFamily::Inet6);
    k6.comment = true;
    assert_exact("create k6 hash:ip,port family inet6 comment", create(k6, 7));
    assert_exact(
        "create kpip hash:ip,port,ip",
        create(
            CreateSpec::hash("kpip", SetType::HashIpPortIp, AddressFamily::Inet),
            6,
        ),
    );
    assert_exact(
        "create kpnet hash:ip,port,net",
        create(
            CreateSpec::hash("kpnet", SetType::HashIpPortNet, AddressFamily::Inet),
            8,
        ),
    );
    assert_exact(
        "create kip1 hash:ip",
        create(
            CreateSpec::hash("kip1", SetType::HashIp, AddressFamily::Inet),
            6,
        ),
    );
    assert_exact(
        "create knet hash:net",
        create(
            CreateSpec::hash("knet", SetType::HashNet, AddressFamily::Inet),
            7,
        ),
    );
    assert_exact(
        "create kbp bitmap:port range 0-65535",
        create(CreateSpec::bitmap_port("kbp", 0, 65535), 3),
    );
}

#[test]
fn create_existing_set_is_eexist() {
    let r = assert_exact(
        "create kip hash:ip,port",
        create(
            CreateSpec::hash("kip", SetType::HashIpPort, AddressFamily::Inet),
            7,
        ),
    );
    assert_eq!(
        single_reply(&r),
        Reply::Error {
            errno: Errno::EEXIST,
            lineno: None
        }
    );
}

#[test]
fn add_requests_are_byte_exact() {
    let tcp53 = Entry::IpPort {
        ip: v4(10, 96, 0, 10),
        proto: Protocol::Tcp,
        port: 53,
    };
    let r = assert_exact("add kip 10.96.0.10,tcp:53", add("kip", tcp53, None));
    assert_eq!(single_reply(&r), Reply::Ack);
    let v6 = Entry::IpPort {
        ip: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        proto: Protocol::Udp,
        port: 53,
    };
    assert_exact(
        "add k6 fd00::1,udp:53 comment hello",
        add("k6", v6, Some("hello")),
    );
    let ipportip = Entry::IpPortIp {
        ip: v4(10, 0, 0, 1),
        proto: Protocol::Tcp,
        port: 80,
        ip2: v4(10, 0, 0, 2),
    };
    assert_exact(
        "add kpip 10.0.0.1,tcp:80,10.0.0.2",
        add("kpip", ipportip, None),
    );
    let ipportnet = Entry::IpPortNet {
        ip: v4(10, 0, 0, 1),
        proto: Protocol::Sctp,
        port: 80,
        net: "10.1.0.0/16".parse().unwrap(),
    };
    assert_exact(
        "add kpnet 10.0.0.1,sctp:80,10.1.0.0/16",
        add("kpnet", ipportnet, None),
    );
    assert_exact(
        "add kip1 10.0.0.9",
        add("kip1", Entry::Ip(v4(10, 0, 0, 9)), None),
    );
    assert_exact(
        "add knet 10.2.0.0/16",
        add("knet", Entry::Net("10.2.0.0/16".parse().unwrap()), None),
    );
    assert_exact("add kbp 30000", add("kbp", Entry::Port(30000), None));
}

#[test]
fn del_and_test_are_byte_exact_and_absent_is_4103() {
    let tcp53 = Entry::IpPort {
        ip: v4(10, 96, 0, 10),
        proto: Protocol::Tcp,
        port: 53,
    };
    let del = Request::Adt {
        op: AdtOp::Del,
        name: "kip".into(),
        exist_ok: false,
        members: vec![Member {
            entry: tcp53,
            comment: None,
        }],
        batch: None,
    };
    assert_exact("del kip 10.96.0.10,tcp:53", del);
    let test = |port| Request::Adt {
        op: AdtOp::Test,
        name: "kbp".into(),
        exist_ok: false,
        members: vec![Member {
            entry: Entry::Port(port),
            comment: None,
        }],
        batch: None,
    };
    assert_eq!(
        single_reply(&assert_exact("test kbp 30000", test(30000))),
        Reply::Ack
    );
    // IPSET_ERR_EXIST: "not in set".
    assert_eq!(
        single_reply(&assert_exact("test kbp 30001", test(30001))),
        Reply::Error {
            errno: IPSET_ERR_EXIST,
            lineno: None
        }
    );
}

#[test]
fn restore_batch_is_byte_exact() {
    // `ipset restore` sends one ADT nest with numbered DATA entries and NLM_F_EXCL.
    let members = vec![
        Member {
            entry: Entry::IpPort {
                ip: v4(10, 0, 0, 1),
                proto: Protocol::Tcp,
                port: 80,
            },
            comment: None,
        },
        Member {
            entry: Entry::IpPort {
                ip: v4(10, 0, 0, 2),
                proto: Protocol::Udp,
                port: 53,
            },
            comment: None,
        },
    ];
    let req = Request::Adt {
        op: AdtOp::Add,
        name: "kip".into(),
        exist_ok: false,
        members,
        batch: Some(1),
    };
    assert_exact("restore -f /tmp/ipset-capture-restore.txt", req);
}

#[test]
fn rename_swap_flush_destroy_are_byte_exact() {
    let r = assert_exact(
        "rename kip1 kip1b",
        Request::Rename {
            from: "kip1".into(),
            to: "kip1b".into(),
        },
    );
    assert_eq!(single_reply(&r), Reply::Ack);
    // hash:ip and hash:net differ in features: IPSET_ERR_TYPE_MISMATCH.
    let r = assert_exact(
        "swap kip1b knet",
        Request::Swap {
            from: "kip1b".into(),
            to: "knet".into(),
        },
    );
    assert_eq!(
        single_reply(&r),
        Reply::Error {
            errno: IPSET_ERR_TYPE_MISMATCH,
            lineno: None
        }
    );
    assert_exact(
        "swap kip1b kip2",
        Request::Swap {
            from: "kip1b".into(),
            to: "kip2".into(),
        },
    );
    assert_exact("flush kip", Request::Flush { name: "kip".into() });
    let r = assert_exact(
        "destroy kip",
        Request::Destroy {
            name: "kip".into(),
            exist_ok: false,
        },
    );
    assert_eq!(single_reply(&r), Reply::Ack);
}

#[test]
fn destroy_missing_set_is_enoent() {
    let msgs = block("destroy kip");
    // The second `destroy kip` block: find it after the first.
    let second = CAPTURED.lines().filter(|l| *l == "# destroy kip").count();
    assert_eq!(second, 2);
    let idx = CAPTURED.rfind("# destroy kip").unwrap();
    let last_recv = CAPTURED[idx..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("recv"))
        .last()
        .unwrap();
    let reply = parse_reply(&unhex(&last_recv[5..])).unwrap().1;
    assert_eq!(
        reply,
        Reply::Error {
            errno: Errno::ENOENT,
            lineno: None
        }
    );
    assert!(!msgs.is_empty());
    let err = IpsetError::from_errno(IpsetOp::Destroy, "kip", Errno::ENOENT, None);
    assert!(matches!(err, IpsetError::SetMissing { .. }), "{err}");
}

fn list(cmd: &str, name: &str) -> ListedSet {
    let replies = assert_exact(
        cmd,
        Request::List {
            name: Some(name.into()),
            mode: ListMode::Full,
        },
    );
    let mut replies = replies.concat();
    let (kinds, mut sets) = decode_all(&replies).unwrap();
    assert_eq!(kinds.last(), Some(&Reply::Done));
    assert_eq!(sets.len(), 1);
    // Truncating the datagram anywhere yields an error or fewer members, never a panic.
    for cut in [1, 7, 20, replies.len() / 2] {
        replies.truncate(replies.len() - cut.min(replies.len()));
        let _ = decode_all(&replies);
    }
    sets.pop().unwrap()
}

#[test]
fn list_hash_ip_port_header_and_members() {
    let set = list("list kip", "kip");
    let h = set.header.unwrap();
    assert_eq!(h.set_type, SetType::HashIpPort);
    assert_eq!(h.family, Some(AddressFamily::Inet));
    assert_eq!(h.revision, 7);
    assert_eq!(h.index, Some(0));
    assert_eq!(h.hashsize, Some(1024));
    assert_eq!(h.maxelem, Some(65536));
    assert_eq!(h.bucketsize, Some(12));
    assert_eq!(h.references, 0);
    assert_eq!(h.elements, 2);
    assert!(!h.comment);
    let entries: Vec<String> = set.members.iter().map(|m| m.entry.to_string()).collect();
    assert_eq!(entries, ["10.0.0.2,udp:53", "10.0.0.1,tcp:80"]);
}

#[test]
fn list_other_types() {
    let k6 = list("list k6", "k6");
    assert!(k6.header.as_ref().unwrap().comment);
    assert_eq!(
        k6.header.as_ref().unwrap().family,
        Some(AddressFamily::Inet6)
    );
    assert_eq!(k6.members[0].entry.to_string(), "fd00::1,udp:53");
    assert_eq!(k6.members[0].comment.as_deref(), Some("hello"));
    assert_eq!(
        list("list kpip", "kpip").members[0].entry.to_string(),
        "10.0.0.1,tcp:80,10.0.0.2"
    );
    assert_eq!(
        list("list kpnet", "kpnet").members[0].entry.to_string(),
        "10.0.0.1,sctp:80,10.1.0.0/16"
    );
    assert_eq!(
        list("list kip1", "kip1").members[0].entry,
        Entry::Ip(v4(10, 0, 0, 9))
    );
    assert_eq!(
        list("list knet", "knet").members[0].entry.to_string(),
        "10.2.0.0/16"
    );
    let kbp = list("list kbp", "kbp");
    assert_eq!(kbp.header.as_ref().unwrap().port_range, Some((0, 65535)));
    assert_eq!(kbp.header.as_ref().unwrap().family, None);
    assert_eq!(kbp.members[0].entry, Entry::Port(30000));
}

#[test]
fn list_names() {
    let (sent, replies) = main_exchange("list -n");
    let req = Request::List {
        name: None,
        mode: ListMode::Names,
    };
    assert_eq!(hex(&req.emit(seq_of(&sent), 7).unwrap()), hex(&sent));
    let (_, sets) = decode_all(&replies.concat()).unwrap();
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["kip", "k6", "kpip", "kpnet", "kip1", "knet", "kbp"]);
    assert!(
        sets.iter()
            .all(|s| s.header.is_none() && s.members.is_empty())
    );
}

#[test]
fn multipart_list_is_merged() {
    // 2,500 members arrive in 11 NLM_F_MULTI parts (the CLI reads 4 KiB at a time).
    let (_, replies) = main_exchange("list kbig");
    assert_eq!(replies.len(), 12);
    let mut decoder = ListDecoder::new();
    for part in &replies {
        for msg in Messages::new(part) {
            let (_, msg) = msg.unwrap();
            if parse_reply(msg).unwrap().1 == Reply::List {
                decoder.feed(msg).unwrap();
            }
        }
    }
    let sets = decoder.finish();
    assert_eq!(sets.len(), 1);
    let set = &sets[0];
    assert_eq!(set.header.as_ref().unwrap().elements, 2500);
    let got: std::collections::BTreeSet<Entry> = set.members.iter().map(|m| m.entry).collect();
    let want: std::collections::BTreeSet<Entry> = (1..=2500u32)
        .map(|i| {
            Entry::Ip(v4(
                10,
                1,
                u8::try_from(i / 256).unwrap(),
                u8::try_from(i % 256).unwrap(),
            ))
        })
        .collect();
    assert_eq!(set.members.len(), 2500);
    assert_eq!(got, want);
}

#[test]
fn batch_error_names_the_entry() {
    // A failed batch: the kernel echoes our message with the command LINENO replaced by the
    // failing entry's (as sent, big-endian). Build such a reply from a captured request.
    let (sent, _) = main_exchange("restore -f /tmp/ipset-capture-restore.txt");
    let mut echo = sent.clone();
    // Command-level LINENO is the third attribute: header 16 + nfgen 4 + PROTOCOL 8 + SETNAME 8.
    assert_eq!(&echo[36..40], &[0x08, 0x00, 0x09, 0x40]);
    echo[40..44].copy_from_slice(&2u32.to_be_bytes());
    let mut reply = Vec::new();
    reply.extend_from_slice(&u32::try_from(16 + 4 + echo.len()).unwrap().to_ne_bytes());
    reply.extend_from_slice(&2u16.to_ne_bytes());
    reply.extend_from_slice(&0u16.to_ne_bytes());
    reply.extend_from_slice(&seq_of(&sent).to_ne_bytes());
    reply.extend_from_slice(&1u32.to_ne_bytes());
    reply.extend_from_slice(&(-4352i32).to_ne_bytes());
    reply.extend_from_slice(&echo);
    assert_eq!(
        parse_reply(&reply).unwrap().1,
        Reply::Error {
            errno: IPSET_ERR_HASH_FULL,
            lineno: Some(2)
        }
    );
}

#[test]
fn foreign_set_types_are_listed_without_members() {
    let (_, replies) = main_exchange("list kip1");
    let mut bytes = replies.concat();
    let at = bytes.windows(7).position(|w| w == b"hash:ip").unwrap();
    bytes[at..at + 7].copy_from_slice(b"hash:zz");
    let (_, sets) = decode_all(&bytes).unwrap();
    let header = sets[0].header.as_ref().unwrap();
    assert_eq!(header.set_type, SetType::Other("hash:zz".to_string()));
    assert_eq!(header.elements, 1);
    assert!(sets[0].members.is_empty());
}

#[test]
fn protocol_falls_back_to_6() {
    use crate::ipset::client::negotiate;
    assert_eq!(negotiate(7), Some(7));
    assert_eq!(negotiate(8), Some(7));
    assert_eq!(negotiate(6), Some(6));
    assert_eq!(negotiate(5), None);
    // Speaking 6, requests carry PROTOCOL=6 and are otherwise identical.
    let (sent, _) = main_exchange("flush kip");
    let mut expected = sent.clone();
    expected[24] = 6; // PROTOCOL attribute value: header 16 + nfgenmsg 4 + nla header 4
    assert_eq!(
        Request::Flush { name: "kip".into() }
            .emit(seq_of(&sent), 6)
            .unwrap(),
        expected
    );
}
