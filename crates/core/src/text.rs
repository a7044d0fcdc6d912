//! Splitting long replies into parts a platform accepts.
//!
//! Lengths are counted in Unicode scalar values (what WhatsApp's 4096 and Kakao's 1000 limits
//! count), and a part never ends inside a UTF-8 sequence. Split points are preferred in this
//! order: paragraph break, line break, sentence end, whitespace; a hard cut only when a single
//! "word" is longer than the limit.
//!
//! [`markdown`] renders the agent's Markdown as chat text; [`strip_directives`] removes
//! OpenClaw's `[[…]]` reply directives first.

pub mod markdown;

/// Splits `text` into parts of at most `max_chars` characters each.
///
/// Whitespace at the split points is dropped; empty input yields no parts.
///
/// # Panics
/// If `max_chars` is 0.
pub fn chunk_text(text: &str, max_chars: usize) -> Vec<String> {
    assert!(max_chars > 0, "max_chars must be positive");
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(limit) = byte_index_of_char(rest, max_chars) else {
            parts.push(rest.to_owned());
            break;
        };
        let window = &rest[..limit];
        let cut = best_cut(window).unwrap_or(limit);
        let (head, tail) = rest.split_at(cut);
        let head = head.trim_end();
        if head.is_empty() {
            // Only whitespace before the cut: take the hard window instead.
            parts.push(window.to_owned());
            rest = rest[limit..].trim_start();
        } else {
            parts.push(head.to_owned());
            rest = tail.trim_start();
        }
    }
    parts
}

/// Byte index of the `n`-th character, or `None` when the text has at most `n` characters.
fn byte_index_of_char(text: &str, n: usize) -> Option<usize> {
    text.char_indices().nth(n).map(|(i, _)| i)
}

/// The byte index to cut `window` at: after the last paragraph break, line break, sentence end
/// or whitespace, provided the part keeps at least a third of the window (no tiny fragments).
fn best_cut(window: &str) -> Option<usize> {
    let min = window.len() / 3;
    let candidates = [
        window.rfind("\n\n").map(|i| i + 2),
        window.rfind('\n').map(|i| i + 1),
        last_sentence_end(window),
        window.char_indices().rev().find(|(_, c)| c.is_whitespace()).map(|(i, c)| i + c.len_utf8()),
    ];
    candidates.into_iter().flatten().find(|&i| i > min && i <= window.len())
}

fn last_sentence_end(window: &str) -> Option<usize> {
    let mut best = None;
    let mut chars = window.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…');
        if ends && chars.peek().is_some_and(|&(_, next)| next.is_whitespace()) {
            best = Some(i + c.len_utf8());
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn multi_byte_whitespace_is_a_valid_cut() {
        // U+00A0 and U+2000 are whitespace of 2 and 3 bytes: the cut must land after them.
        let text = format!("{}\u{a0}{}\u{2000}{}", "a".repeat(6), "b".repeat(6), "c".repeat(6));
        let parts = chunk_text(&text, 10);
        assert_eq!(parts.concat().chars().filter(|c| c.is_alphabetic()).count(), 18);
        assert!(parts.iter().all(|p| p.chars().count() <= 10));
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(chunk_text("  hello  ", 10), vec!["hello"]);
        assert!(chunk_text("   ", 10).is_empty());
    }

    #[test]
    fn prefers_paragraphs_then_sentences() {
        let text = "First paragraph here.\n\nSecond one is a little longer. It has two sentences.";
        assert_eq!(
            chunk_text(text, 40),
            vec!["First paragraph here.", "Second one is a little longer.", "It has two sentences."]
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "가".repeat(10);
        let parts = chunk_text(&text, 4);
        assert_eq!(parts, vec!["가가가가", "가가가가", "가가"]);
    }

    #[test]
    fn korean_sentences_split_at_sentence_ends() {
        let text = "안녕하세요. 반갑습니다. 오늘 날씨가 좋네요.";
        assert_eq!(chunk_text(text, 14), vec!["안녕하세요. 반갑습니다.", "오늘 날씨가 좋네요."]);
    }

    proptest! {
        #[test]
        fn parts_respect_the_limit_and_keep_every_word(text in "[a-z가-힣 .\n]{0,400}", max in 1usize..60) {
            let parts = chunk_text(&text, max);
            for part in &parts {
                prop_assert!(part.chars().count() <= max);
                prop_assert!(!part.trim().is_empty());
            }
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(squash(&parts.concat()), squash(&text));
        }
    }
}

/// Word joiner: invisible, not whitespace (survives JavaScript's `trim()`), so it keeps a
/// leading `/` or a `$name` from being read as a gateway command or skill reference.
const WORD_JOINER: char = '\u{2060}';

/// Removes OpenClaw's reply directives, `[[name]]` and `[[name:arg]]` (lower-case names with
/// underscores: `[[reply_to_current]]`, `[[reply_to:<id>]]`, `[[audio_as_voice]]`), which the
/// gateway leaves in the text; anything else in double brackets stays.
pub fn strip_directives(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("]]") {
            Some(end) if is_directive(&after[..end]) => {
                rest = &after[end + 2..];
                // Swallow one space so "[[reply_to_current]] Hi" becomes "Hi".
                if out.is_empty() || out.ends_with('\n') {
                    rest = rest.strip_prefix(' ').unwrap_or(rest);
                }
            }
            _ => {
                out.push_str("[[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_directive(inner: &str) -> bool {
    let name = inner.split_once(':').map_or(inner, |(name, _)| name).trim();
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && !inner.contains('\n')
        && inner.len() <= 200
}

/// Makes user text inert for the gateway's command handling (reference §2.9): a leading `/`
/// would run a gateway text command, and `$name` would invoke a skill (failing the run when
/// unknown). People on KakaoTalk and WhatsApp type both freely; they are meant as text.
pub fn neutralize_commands(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    if text.starts_with('/') {
        out.push(WORD_JOINER);
    }
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && chars.peek().is_some_and(|n| n.is_alphabetic() || *n == '_') {
            out.push(WORD_JOINER);
        }
    }
    out
}

#[cfg(test)]
mod neutralize_tests {
    use super::*;

    #[test]
    fn commands_and_skill_references_become_text() {
        assert_eq!(neutralize_commands("/reset"), "\u{2060}/reset");
        assert_eq!(neutralize_commands("use $weather now"), "use $\u{2060}weather now");
        assert_eq!(neutralize_commands("costs $20 / month"), "costs $20 / month");
        assert_eq!(neutralize_commands("안녕 /help"), "안녕 /help");
    }
}
