//! The cut before tokenizing on arbitrary text: a prefix that ends at
//! whitespace or at the end, and that keeps at least the asked-for number
//! of words, so no kept token can change.
#![no_main]

use batch_serving_ort::embedding::cut_beyond_tokens;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str)| {
    let (tokens, text) = (usize::from(input.0), input.1);
    let cut = cut_beyond_tokens(text, tokens);
    assert!(text.starts_with(cut));
    if cut.len() < text.len() {
        let next = text[cut.len()..].chars().next();
        assert!(next.is_some_and(char::is_whitespace), "cut inside a word");
        let words = cut
            .split(char::is_whitespace)
            .filter(|word| word.chars().any(|c| c.is_ascii_alphanumeric()))
            .count();
        assert!(words >= tokens, "cut with {words} words for {tokens} tokens");
    }
});
