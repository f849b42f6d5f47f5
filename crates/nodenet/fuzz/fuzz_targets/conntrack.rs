//! A conntrack dump reply datagram -> flows; each decoded flow also goes through the UDP
//! selection and the delete-message builder the cleanup uses. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodenet::conntrack::{ReplySource, delete_message, select_udp};

fuzz_target!(|data: &[u8]| {
    if let Ok(flows) = nodenet::wire::conntrack_flows(data) {
        for f in &flows {
            let _ = delete_message(f);
        }
        if let Some(f) = flows.first() {
            let _ = select_udp(&flows, f.orig.dst, f.orig.dport, &ReplySource::Any);
        }
    }
});
