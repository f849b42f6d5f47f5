//! An `RTM_GETADDR` reply datagram -> (ifindex, address/prefix). Any panic is a bug; every
//! decoded prefix is a valid one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(addrs) = nodenet::wire::addresses(data) {
        for (_, net) in addrs {
            assert!(net.prefix_len() <= net.max_prefix_len());
        }
    }
});
