//! The agent's Markdown → WhatsApp text (pure).
//!
//! WhatsApp formats `*bold*`, `_italic_`, `~strike~` and ```` ``` ```` code; it has no headings
//! or links syntax. Code spans, code blocks and URLs pass through untouched; OpenClaw's
//! directive tags (`[[reply_to_current]]`, `[[reply_to:<id>]]`, `[[audio_as_voice]]`) are
//! removed; the result is split into parts of at most 4096 characters.

use clawbridge_core::text::{chunk_text, collapse_blank_lines};

/// WhatsApp's text limit, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Room kept in each part for closing and reopening a code fence cut by the split.
const FENCE_ROOM: usize = 8;

/// Renders and splits a reply: the parts to send, in order. A code block cut by a split is
/// closed at the end of its part and reopened in the next, so both render as code.
pub fn render_reply_parts(markdown: &str) -> Vec<String> {
    let mut parts = chunk_text(&to_whatsapp(markdown), MAX_TEXT_CHARS - FENCE_ROOM);
    let mut open = false;
    for part in &mut parts {
        if open {
            part.insert_str(0, "```\n");
        }
        let fences = part.lines().filter(|l| l.trim_start().starts_with("```")).count();
        open = fences % 2 == 1;
        if open {
            part.push_str("\n```");
        }
    }
    parts
}

/// Converts Markdown to WhatsApp formatting and removes directive tags.
pub fn to_whatsapp(markdown: &str) -> String {
    let text = strip_directives(markdown);
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push_str(line);
            continue;
        }
        if in_fence {
            out.push_str(line);
            continue;
        }
        out.push_str(&convert_line(line));
    }
    // Directive removal can leave blank runs behind.
    collapse_blank_lines(out.trim())
}

/// Removes `[[name]]` and `[[name:arg]]` directive tags (lower-case names with underscores).
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

fn convert_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    // Headings → bold lines.
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        let title = trimmed[hashes..].trim().trim_end_matches('#').trim();
        // The whole line becomes bold: bold inside it would end the bold early.
        let inner = convert_inline(&title.replace("**", "").replace("__", ""));
        let inner = inner.trim_matches('*');
        return format!("{indent}*{inner}*");
    }
    // Horizontal rules look odd in a chat.
    if !trimmed.is_empty() && trimmed.len() >= 3 && trimmed.chars().all(|c| matches!(c, '-' | '*' | '_')) {
        return "──────".to_owned();
    }
    // "* item" is a bullet, not emphasis.
    if let Some(item) = trimmed.strip_prefix("* ").or_else(|| trimmed.strip_prefix("+ ")) {
        return format!("{indent}- {}", convert_inline(item));
    }
    format!("{indent}{}", convert_inline(trimmed))
}

/// Converts the emphasis of one line; code spans, URLs and link targets are copied verbatim.
fn convert_inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Inline code: copy through the closing backtick.
        if c == '`'
            && let Some(end) = find_from(&chars, i + 1, |j| chars[j] == '`')
        {
            out.extend(&chars[i..=end]);
            i = end + 1;
            continue;
        }
        // URLs are never touched (underscores and asterisks in them are not emphasis).
        if starts_with(&chars, i, "https://") || starts_with(&chars, i, "http://") {
            let end = find_from(&chars, i, |j| chars[j].is_whitespace() || chars[j] == ')').unwrap_or(chars.len());
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        // [text](url) → text (url); [url](url) → url.
        if c == '['
            && let Some((label, url, next)) = parse_link(&chars, i)
        {
            let label_text = convert_inline(&label);
            if label.trim() == url.trim() {
                out.push_str(&url);
            } else {
                out.push_str(&format!("{label_text} ({url})"));
            }
            i = next;
            continue;
        }
        if let Some((rendered, next)) = emphasis(&chars, i) {
            out.push_str(&rendered);
            i = next;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `**b**`/`__b__` → `*b*`, `~~s~~` → `~s~`, `*i*` → `_i_` starting at `i`: the rendering and the next index.
fn emphasis(chars: &[char], i: usize) -> Option<(String, usize)> {
    for (marker, replacement) in [("**", '*'), ("__", '*'), ("~~", '~')] {
        if starts_with(chars, i, marker)
            && let Some(end) = find_closing(chars, i + 2, marker)
        {
            let inner: String = chars[i + 2..end].iter().collect();
            return Some((format!("{replacement}{}{replacement}", convert_inline(&inner)), end + 2));
        }
    }
    // A single asterisk hugging a word on both ends.
    if chars[i] == '*' && !starts_with(chars, i, "**") && chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) {
        let end = find_from(chars, i + 1, |j| {
            chars[j] == '*' && !chars[j - 1].is_whitespace() && chars.get(j + 1) != Some(&'*')
        })?;
        let inner: String = chars[i + 1..end].iter().collect();
        return Some((format!("_{}_", convert_inline(&inner)), end + 1));
    }
    None
}

fn starts_with(chars: &[char], at: usize, pattern: &str) -> bool {
    (at..).zip(pattern.chars()).all(|(j, p)| chars.get(j) == Some(&p))
}

fn find_from(chars: &[char], from: usize, pred: impl Fn(usize) -> bool) -> Option<usize> {
    (from..chars.len()).find(|&j| pred(j))
}

/// The index of a closing `marker` after non-empty content that does not start or end with a space.
fn find_closing(chars: &[char], from: usize, marker: &str) -> Option<usize> {
    if chars.get(from).is_none_or(|c| c.is_whitespace()) {
        return None;
    }
    let end = find_from(chars, from + 1, |j| starts_with(chars, j, marker))?;
    (!chars[end - 1].is_whitespace()).then_some(end)
}

fn parse_link(chars: &[char], at: usize) -> Option<(String, String, usize)> {
    let close = find_from(chars, at + 1, |j| chars[j] == ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = find_from(chars, close + 2, |j| chars[j] == ')')?;
    let url: String = chars[close + 2..end].iter().collect();
    if !(url.starts_with("http://")
        || url.starts_with("https://")
        || url.starts_with("mailto:")
        || url.starts_with("tel:"))
    {
        return None;
    }
    Some((chars[at + 1..close].iter().collect(), url, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emphasis_and_headings() {
        assert_eq!(to_whatsapp("**bold** and *italic* and ~~gone~~"), "*bold* and _italic_ and ~gone~");
        assert_eq!(to_whatsapp("__bold__ _it_"), "*bold* _it_");
        assert_eq!(to_whatsapp("## Plan **A**"), "*Plan A*");
        assert_eq!(to_whatsapp("**bold with *inner* italic**"), "*bold with _inner_ italic*");
        assert_eq!(to_whatsapp("2 * 3 * 4"), "2 * 3 * 4");
        assert_eq!(to_whatsapp("* one\n* two"), "- one\n- two");
    }

    #[test]
    fn code_and_links_stay_intact() {
        let code = "Run:\n```\nlet **x** = a_b_c * 2;\n```\nthen `**y**` done";
        assert_eq!(to_whatsapp(code), code);
        assert_eq!(to_whatsapp("see https://ex.com/a_b_c?x=*y* now"), "see https://ex.com/a_b_c?x=*y* now");
        assert_eq!(to_whatsapp("[the docs](https://ex.com/my_page)"), "the docs (https://ex.com/my_page)");
        assert_eq!(to_whatsapp("[https://ex.com](https://ex.com)"), "https://ex.com");
        assert_eq!(to_whatsapp("[not a link](javascript:x)"), "[not a link](javascript:x)");
    }

    #[test]
    fn directive_tags_are_removed() {
        assert_eq!(to_whatsapp("[[reply_to_current]] Hello"), "Hello");
        assert_eq!(to_whatsapp("Hi [[reply_to:wamid.123]]there [[audio_as_voice]]"), "Hi there");
        assert_eq!(to_whatsapp("[[reply_to_current]]\n\n\nText"), "Text");
        assert_eq!(to_whatsapp("keep [[Not A Tag]] and [[x"), "keep [[Not A Tag]] and [[x");
    }

    #[test]
    fn long_replies_split_within_the_limit() {
        let paragraph = "word ".repeat(700);
        let text = format!("{paragraph}\n\n{paragraph}");
        let parts = render_reply_parts(&text);
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT_CHARS));
        let emoji = "😀".repeat(5000);
        let parts = render_reply_parts(&emoji);
        assert_eq!(parts.iter().map(|p| p.chars().count()).sum::<usize>(), 5000);
    }

    #[test]
    fn a_code_block_cut_by_the_split_is_closed_and_reopened() {
        let code: String = (0..400).map(|i| format!("let value_{i} = {i};\n")).collect();
        let parts = render_reply_parts(&format!("Here:\n```\n{code}```\nDone."));
        assert!(parts.len() >= 2);
        for part in &parts {
            let fences = part.lines().filter(|l| l.trim_start().starts_with("```")).count();
            assert_eq!(fences % 2, 0, "balanced fences in {part:?}");
            assert!(part.chars().count() <= MAX_TEXT_CHARS);
        }
        assert!(parts[1].starts_with("```\n"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn parts_respect_the_limit_and_never_panic(text in "\\PC{0,9000}") {
            for part in render_reply_parts(&text) {
                prop_assert!(part.chars().count() <= MAX_TEXT_CHARS);
                prop_assert!(!part.is_empty());
            }
        }

        #[test]
        fn plain_words_pass_unchanged(words in proptest::collection::vec("[a-zA-Z0-9,.!?]{1,12}", 0..50)) {
            let text = words.join(" ");
            prop_assert_eq!(to_whatsapp(&text), text.trim().to_owned());
        }
    }
}
