//! The cut before tokenizing, as a property over generated text (the
//! `text_cut` fuzz target checks the same on arbitrary bytes): a prefix that
//! ends at whitespace or at the end and keeps at least the asked-for words.

use batch_serving_ort::embedding::cut_beyond_tokens;
use proptest::prelude::*;

fn counted_words(text: &str) -> usize {
    text.split(char::is_whitespace)
        .filter(|word| word.chars().any(|c| c.is_ascii_alphanumeric()))
        .count()
}

proptest! {
    #[test]
    fn the_cut_is_a_prefix_at_whitespace_with_enough_words(
        pieces in proptest::collection::vec("[a-zA-Z0-9]{0,6}|[.,!?]{1,3}|\\PC{1,3}|[ \t\n\u{3000}]{1,3}", 0..200),
        tokens in 0usize..64,
    ) {
        let text: String = pieces.concat();
        let cut = cut_beyond_tokens(&text, tokens);
        prop_assert!(text.starts_with(cut));
        if cut.len() < text.len() {
            let next = text[cut.len()..].chars().next();
            prop_assert!(next.is_some_and(char::is_whitespace));
            prop_assert!(counted_words(cut) >= tokens);
        } else {
            // Not cut: the text never had more words than asked for before
            // its last whitespace.
            let before_last_space = text.trim_end_matches(|c: char| !c.is_whitespace());
            prop_assert!(counted_words(before_last_space) < tokens || before_last_space.is_empty());
        }
    }
}
