//! `iptables-save` output (any text) -> chains and rules, and each rule through the normalizer
//! that compares rendered rules with the kernel's. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodenet::iptables::save::{SavedTable, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let table = SavedTable::parse(text);
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix(':')
            .and_then(|d| d.split_whitespace().next())
        {
            assert!(table.has_chain(name));
            for rule in table.rules(name) {
                let _ = normalize(rule);
            }
        }
    }
    let _ = normalize(text);
});
