//! The owners file `list --services` reads (`/run/kube-ipvs/owners.json`) -> owners. Never
//! panics; whatever parses writes back to JSON that parses to the same owners.
#![no_main]

use std::path::Path;

use kube_ipvs::owners::Owners;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("owners.json");
    if let Ok(owners) = Owners::from_json(text, path) {
        let again = Owners::from_json(&owners.to_json(), path).expect("written owners parse");
        assert_eq!(again.len(), owners.len());
        for (vs, owner) in owners.iter() {
            assert_eq!(again.get(vs), Some(owner));
        }
    }
});
