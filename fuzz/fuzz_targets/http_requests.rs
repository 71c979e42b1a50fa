//! The HTTP examples' request parsing on arbitrary bodies and content
//! types: a value or a client error, never a panic.
#![no_main]

use batch_serving_examples::embed_http::{MAX_TEXTS, parse_embed_body};
use batch_serving_examples::http::parse_classify_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the content type the classify route sees.
    let (content_type, body) = match input.split_first() {
        Some((0, rest)) => (Some("application/json"), rest),
        Some((1, rest)) => (Some("image/jpeg"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, input),
    };
    if let Ok(image) = parse_classify_body(content_type, body) {
        assert!(content_type == Some("application/json") || image == body);
    }
    match parse_embed_body(body) {
        Ok(texts) => assert!(!texts.is_empty() && texts.len() <= MAX_TEXTS),
        Err((status, message)) => assert!(status.is_client_error() && !message.is_empty()),
    }
});
