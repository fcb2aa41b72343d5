//! ANSI colours of `get rollout` / `get experiment`, following Argo's colour table.
//!
//! Argo wraps *every* colourised word in an escape sequence, using code 0 (reset) for words
//! without a colour, so that its tab writer sees consistent lengths; we do the same so the
//! coloured output is byte-identical.

use crate::info::{icon, tag};

const RED: u8 = 31;
const GREEN: u8 = 32;
const YELLOW: u8 = 33;
const HI_BLUE: u8 = 94;

/// Colour code of a well-known word (icon, role tag, analysis phase); 0 for anything else.
fn color_of(word: &str) -> u8 {
    match word {
        icon::WAITING | icon::UNKNOWN | tag::CANARY => YELLOW,
        icon::PROGRESSING | tag::PREVIEW | tag::PING | tag::PONG | "Pending" | "Running" => HI_BLUE,
        icon::WARNING | icon::BAD => RED,
        icon::OK | tag::STABLE | tag::ACTIVE => GREEN,
        _ => 0,
    }
}

/// Applies colours, or does nothing when disabled.
#[derive(Clone, Copy, Debug)]
pub struct Colorizer {
    enabled: bool,
}

impl Colorizer {
    /// A colorizer; `enabled` false makes every method return its input unchanged.
    pub fn new(enabled: bool) -> Self {
        Colorizer { enabled }
    }

    /// Colours a well-known word by itself.
    pub fn word(&self, word: &str) -> String {
        self.with_color_of(word, word)
    }

    /// Colours `text` with the colour of `key` (e.g. a ReplicaSet name by its role tag).
    pub fn with_color_of(&self, text: &str, key: &str) -> String {
        if !self.enabled {
            return text.to_string();
        }
        format!("\x1b[{}m{text}\x1b[0m", color_of(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_known_and_unknown_words() {
        let c = Colorizer::new(true);
        assert_eq!(c.word("✔"), "\x1b[32m✔\x1b[0m");
        assert_eq!(c.word("॥"), "\x1b[0m॥\x1b[0m");
        assert_eq!(c.with_color_of("ro-abc", "canary"), "\x1b[33mro-abc\x1b[0m");
        assert_eq!(Colorizer::new(false).word("✔"), "✔");
    }
}
