//! The /proc/net/ip_vs text table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ipvs_netlink::procfs::parse(text);
    }
});
