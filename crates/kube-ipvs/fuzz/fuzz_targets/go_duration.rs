//! Go duration text (`time.ParseDuration`'s syntax, the KubeProxyConfiguration's durations) ->
//! a duration. Never panics; whatever parses prints back (`Duration.String()`) to text that
//! parses to the same duration.
#![no_main]

use kube_ipvs::config::duration::{GoDuration, format_go};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = GoDuration::parse(text) {
        let printed = d.to_string();
        let again = GoDuration::parse(&printed).expect("a printed duration parses");
        assert_eq!(again, d, "{text:?} -> {printed:?}");
        if let Some(std) = d.non_negative() {
            assert_eq!(GoDuration::parse(&format_go(std)).ok(), Some(d));
        }
    }
});
