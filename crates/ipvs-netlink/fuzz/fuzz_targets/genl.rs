//! The rust-netlink path: NetlinkMessage<GenlMessage<IpvsMessage>>.
#![no_main]

use ipvs_netlink::IpvsMessage;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::NetlinkMessage;
use netlink_packet_generic::GenlMessage;

fuzz_target!(|data: &[u8]| {
    let _ = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(data);
});
