//! An `RTM_GETROUTE` reply datagram -> the local table's `local` routes. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(routes) = nodenet::wire::local_routes(data) {
        for r in routes {
            assert!(r.prefix.prefix_len() <= r.prefix.max_prefix_len());
        }
    }
});
