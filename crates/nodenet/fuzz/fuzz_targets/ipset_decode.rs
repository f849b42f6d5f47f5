//! Feeds arbitrary bytes to every ipset decoder: reply datagrams (acks, errors, multipart
//! LIST dumps), the LIST merger, and the request parser. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodenet::ipset::{ListDecoder, Messages, Request, decode_all, parse_reply};

fuzz_target!(|data: &[u8]| {
    let _ = decode_all(data);
    let _ = Request::parse(data);
    let mut lists = ListDecoder::new();
    for msg in Messages::new(data) {
        let Ok((_, msg)) = msg else { break };
        let _ = parse_reply(msg);
        let _ = lists.feed(msg);
    }
    // Whatever parses as a request must re-encode and parse back to itself.
    if let Ok((seq, req)) = Request::parse(data) {
        if let Ok(bytes) = req.emit(seq, 7) {
            let (seq2, again) = Request::parse(&bytes).expect("re-emitted request parses");
            assert_eq!(seq2, seq);
            assert_eq!(again, req);
        }
    }
});
