//! The agent's Markdown → WhatsApp text (pure).
//!
//! WhatsApp formats `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks, `> `
//! quotes and `- `/`1. ` lists; it has no headings, tables or link syntax. The reply is parsed as
//! Markdown ([`clawbridge_core::text::markdown`]): headings become bold lines, tables one line per
//! row, links `label (url)`; code and URLs pass through untouched. OpenClaw's directive tags
//! (`[[reply_to_current]]`, `[[reply_to:<id>]]`, `[[audio_as_voice]]`) are removed, and the result
//! is split into parts of at most 4096 characters.

use clawbridge_core::text::chunk_text;
use clawbridge_core::text::markdown::{self, ChatStyle, LinkStyle};

pub use clawbridge_core::text::strip_directives;

/// WhatsApp's text limit, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Room kept in each part for closing and reopening a code fence cut by the split.
const FENCE_ROOM: usize = 8;

/// WhatsApp's own formatting marks.
const WHATSAPP: ChatStyle = ChatStyle {
    strong: "*",
    emphasis: "_",
    strike: "~",
    bold_headings: true,
    quote: "> ",
    bullet: "-",
    // Horizontal rules look odd in a chat.
    rule: Some("──────"),
    cell_separator: " | ",
    code_marks: true,
    links: LinkStyle::Inline,
    link_schemes: &["https://", "http://", "mailto:", "tel:"],
    image_lines: false,
};

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
    markdown::render(&strip_directives(markdown), &WHATSAPP).text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Markdown inputs for the snapshot tests (the Kakao renderer's tests have their own set).
    const SNAPSHOT_CASES: &[(&str, &str)] = &[
        (
            "nested_emphasis",
            "**bold with *italic* and ~~struck~~ inside**, ***both***, _under_, ~~*gone*~~ and `**code**`",
        ),
        (
            "lists",
            "Steps:\n1. Install\n   - run `cargo build`\n   - **check** the output\n2. Configure\n   1. edit\n   2. save\n\n- loose item\n\n- another\n  continued line\n* [ ] task",
        ),
        (
            "table",
            "Plans:\n\n| Plan | Price | Notes |\n|:--|--:|---|\n| **Basic** | $5 | for *one* user |\n| Pro | $20 | [docs](https://ex.com/pro) |\n\nPick one.",
        ),
        (
            "links",
            "See [the docs](https://ex.com/my_page), <https://ex.com/auto>, https://ex.com/a_b?x=*y*, [mail](mailto:a@ex.com), [https://ex.com](https://ex.com), ![chart](https://img.ex.com/c.png) and [bad](javascript:alert(1)).\nhttps://img.ex.com/alone.jpg",
        ),
        (
            "code",
            "Run:\n```bash\nexport A=*b*\n\n\necho __x__\n```\nthen `a_b` and ``a ` tick``:\n\n    indented *code*",
        ),
        (
            "headings_and_quotes",
            "# Title\n## Sub **bold** and *em*\nSetext title\n---\n> quote with *em*\n> > nested\n\n***\n\nend",
        ),
        (
            "korean",
            "[[reply_to_current]] # 배송 안내\n\n**배송**은 _보통_ 2~3일, 제주는 3~5일 걸려요.\n\n> 주문 조회는 [주문 페이지](https://shop.example/orders)에서 하세요.\n\n- 서울: `1일`\n- 지방: 2일\n\n---\n감사합니다! [[audio_as_voice]]",
        ),
    ];

    #[test]
    fn markdown_snapshots() {
        for (name, markdown) in SNAPSHOT_CASES {
            insta::with_settings!({ description => *markdown, omit_expression => true }, {
                insta::assert_snapshot!(*name, to_whatsapp(markdown));
            });
        }
    }

    /// Each part's length and its ends: where the split fell and how fences were closed and reopened.
    fn split_summary(parts: &[String]) -> Vec<serde_json::Value> {
        parts
            .iter()
            .map(|p| {
                let chars: Vec<char> = p.chars().collect();
                let head: String = chars.iter().take(40).collect();
                let tail: String = chars[chars.len().saturating_sub(40)..].iter().collect();
                serde_json::json!({"chars": chars.len(), "starts": head, "ends": tail})
            })
            .collect()
    }

    #[test]
    fn long_reply_split_snapshot() {
        let code: String = (0..300).map(|i| format!("let value_{i} = {i}; // **not bold**\n")).collect();
        let prose = "가나다라마바사 아자차카타파하. *Emphasis* stays. ".repeat(40);
        let reply = format!("## Report\n\n{prose}\n\n```rust\n{code}```\n\n{prose}\n\n- last item");
        insta::assert_json_snapshot!(split_summary(&render_reply_parts(&reply)));
    }

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
