//! Deterministic token counting for the mock provider.
//!
//! Real tokenizers are model-specific and large; the mock needs counts that are
//! stable, cheap and roughly the right size. The rule: split on whitespace, and each
//! word costs `ceil(chars / 4)` tokens (at least 1), since English averages about four
//! characters per token. So `"hello world"` is 2 + 2 = 4 tokens and `""` is 0.
//! Prompt tokens are the sum over all messages' text content; roles and message
//! framing are not counted.

use crate::openai::types::{ChatMessage, MessageContent};

/// Prompt tokens of `messages` by the rule above (the sum over their text content):
/// what the mock reports, and what billing estimates for a prompt whose upstream
/// never reported usage.
pub fn prompt(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| {
            u64::from(match &m.content {
                // The common case, counted in place (no copy of the text).
                Some(MessageContent::Text(text)) => count(text),
                _ => count(&m.text()),
            })
        })
        .sum()
}

/// Tokens of the generated text in one OpenAI message or stream delta (a JSON
/// object with `content` and maybe `tool_calls[].function.arguments`), by the rule
/// above: what billing estimates for an answer that reported no usage.
pub fn of_message_value(message: &serde_json::Value) -> u64 {
    let content = message
        .get("content")
        .and_then(serde_json::Value::as_str)
        .map_or(0, count);
    let arguments: u32 = message
        .get("tool_calls")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function")?.get("arguments")?.as_str())
        .map(count)
        .sum();
    u64::from(content) + u64::from(arguments)
}

/// Tokens in `text` by the rule above.
pub fn count(text: &str) -> u32 {
    if text.is_ascii() {
        return count_ascii(text.as_bytes());
    }
    text.split_whitespace().map(word_tokens).sum()
}

/// [`count`] of ASCII text, byte by byte (every request's prompt is counted: the
/// general path, Unicode-aware, costs several times more).
fn count_ascii(text: &[u8]) -> u32 {
    let mut tokens = 0u32;
    let mut word = 0u32;
    for &b in text {
        if b.is_ascii_whitespace() || b == 0x0b {
            tokens += word.div_ceil(4);
            word = 0;
        } else {
            word += 1;
        }
    }
    tokens + word.div_ceil(4)
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

    #[test]
    fn the_ascii_path_counts_as_the_general_one() {
        let general = |t: &str| -> u32 { t.split_whitespace().map(word_tokens).sum() };
        for text in [
            "",
            " ",
            "a",
            "Say hello to the benchmark.",
            "  two\tspaces\n\nand lines\r\n",
            "vertical\x0btab and\x0cform feed",
            "abcdefghijklmnop qrstu",
        ] {
            assert_eq!(count(text), general(text), "{text:?}");
        }
    }
}
