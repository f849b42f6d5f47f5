//! A destination nest: attributes, then the `Destination` value.
#![no_main]

use ipvs_netlink::destination::DestinationAttribute;
use ipvs_netlink::{AddressFamily, Destination};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NlasIterator, Parseable};

fuzz_target!(|data: &[u8]| {
    let mut nlas = Vec::new();
    for nla in NlasIterator::new(data) {
        let Ok(nla) = nla else { return };
        match DestinationAttribute::parse(&nla) {
            Ok(a) => nlas.push(a),
            Err(_) => return,
        }
    }
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        if let Ok(d) = Destination::from_attributes(&nlas, family) {
            let mut back = Destination::from_attributes(&d.to_attributes(), family)
                .expect("own encoding decodes");
            back.active_conns = d.active_conns;
            back.inactive_conns = d.inactive_conns;
            back.persistent_conns = d.persistent_conns;
            back.stats = d.stats;
            assert_eq!(back, d);
        }
    }
});
