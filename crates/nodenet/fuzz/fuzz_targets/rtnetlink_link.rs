//! An `RTM_GETLINK` reply datagram -> links (index, name, kind, loopback). Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(links) = nodenet::wire::links(data) {
        for l in links {
            let _ = (l.index, l.name.map(|n| n.len()), l.kind, l.loopback);
        }
    }
});
