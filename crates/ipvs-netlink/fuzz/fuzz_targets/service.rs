//! A service nest: attributes, then the `Service` value and its key.
#![no_main]

use ipvs_netlink::service::ServiceAttribute;
use ipvs_netlink::{Service, VirtualServiceKey};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NlasIterator, Parseable};

fuzz_target!(|data: &[u8]| {
    let mut nlas = Vec::new();
    for nla in NlasIterator::new(data) {
        let Ok(nla) = nla else { return };
        match ServiceAttribute::parse(&nla) {
            Ok(a) => nlas.push(a),
            Err(_) => return,
        }
    }
    let _ = VirtualServiceKey::from_attributes(&nlas);
    if let Ok(s) = Service::from_attributes(&nlas) {
        // A decoded service re-encodes into a request that decodes to the same service.
        let back = Service::from_attributes(&s.to_attributes()).expect("own encoding decodes");
        assert_eq!(
            (back.key, back.scheduler, back.flags.settable()),
            (s.key, s.scheduler.clone(), s.flags.settable())
        );
    }
});
