//! Deterministic token counting for the mock provider.
//!
//! Real tokenizers are model-specific and large; the mock needs counts that are
//! stable, cheap and roughly the right size. The rule: split on whitespace, and each
//! word costs `ceil(chars / 4)` tokens (at least 1), since English averages about four
//! characters per token. So `"hello world"` is 2 + 2 = 4 tokens and `""` is 0.
//! Prompt tokens are the sum over all messages' text content; roles and message
//! framing are not counted.

/// Tokens in `text` by the rule above.
pub fn count(text: &str) -> u32 {
    text.split_whitespace().map(word_tokens).sum()
}

/// Tokens in one whitespace-free word.
pub fn word_tokens(word: &str) -> u32 {
    let chars = word.chars().count() as u32;
    chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_chars_per_token_per_word() {
        assert_eq!(count(""), 0);
        assert_eq!(count("   \n"), 0);
        assert_eq!(count("a"), 1);
        assert_eq!(count("abcd"), 1);
        assert_eq!(count("abcde"), 2);
        assert_eq!(count("hello world"), 4);
        assert_eq!(count("héllo"), 2, "counts characters, not bytes");
    }
}
