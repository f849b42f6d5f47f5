//! Datagram -> replies -> IPVS messages -> domain values; what decodes must re-encode stably.
#![no_main]

use ipvs_netlink::AddressFamily;
use ipvs_netlink::frame::{self, FLAGS_ACK, ReplyBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for reply in frame::replies(data) {
        let Ok(frame::Reply {
            body: ReplyBody::Message(m),
            ..
        }) = reply
        else {
            continue;
        };
        let _ = m.service();
        let _ = m.service_key();
        let _ = m.destination(AddressFamily::Inet);
        let _ = m.destination(AddressFamily::Inet6);
        let _ = m.info();
        let _ = m.daemon();
        let _ = m.timeouts();
        let mut buf = Vec::new();
        if frame::encode(&mut buf, 0x20, FLAGS_ACK, 1, &m).is_ok() {
            let again = frame::replies(&buf)
                .next()
                .expect("one message")
                .expect("re-encoded message decodes");
            assert_eq!(again.body, ReplyBody::Message(m));
        }
    }
});
