//! Fuzz target: the checksum-validator's SQS body parser on arbitrary UTF-8.
//!
//! Drives [`parse_body`], [`acknowledged`], [`key_candidates`] and the key codec
//! ([`decode_event_key`], [`encode_event_key`]) and checks what they promise: a parsed event
//! names a bucket and a key, its key is its first candidate, candidates are distinct and
//! include the key exactly as it arrived, and encoding a key then decoding it gives it back.
//! Invalid UTF-8 is rejected (never reaches the parser: an SQS body is a string).

#![no_main]

use checksum_validator::event::{
    acknowledged, decode_event_key, encode_event_key, key_candidates, parse_body, KeyEncoding,
};
use libfuzzer_sys::{fuzz_target, Corpus};

fn check_candidates(raw: &str) {
    for likely in [KeyEncoding::Percent, KeyEncoding::Form] {
        let c = key_candidates(raw, likely);
        assert!(!c.is_empty() && c.len() <= 3, "{raw:?}: {c:?}");
        assert!(c.iter().any(|k| k == raw), "{raw:?} is not among {c:?}");
        for (i, k) in c.iter().enumerate() {
            assert!(!c[..i].contains(k), "{raw:?}: duplicate candidate in {c:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(body) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let _ = acknowledged(body);
    if let Ok(events) = parse_body(body) {
        assert!(!events.is_empty(), "Ok with no events for {body:?}");
        for e in &events {
            assert!(!e.bucket.is_empty(), "empty bucket for {body:?}");
            assert_eq!(e.key_candidates.first(), Some(&e.key), "{body:?}");
        }
    }
    // The body itself as a key, as an emitter might send it.
    check_candidates(body);
    let _ = decode_event_key(body);
    assert_eq!(
        decode_event_key(&encode_event_key(body)),
        body,
        "encode/decode round trip"
    );
    Corpus::Keep
});
