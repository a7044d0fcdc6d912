//! The agent's answer → SkillResponse pages (pure).
//!
//! KakaoTalk shows text literally, so the Markdown is parsed
//! ([`clawbridge_core::text::markdown`]) and rewritten the way a person would for a chat message:
//! marks dropped, bullets as "• ", table rows as "a · b". Markdown links become web-link buttons
//! on a `textCard`, images (and image URLs alone on a line) `simpleImage`s, and the text is split
//! into `simpleText`s of at most 1000 characters on paragraph and sentence boundaries. A response
//! holds three outputs; what does not fit goes to further pages, reached with the "더 보기" quick
//! reply. OpenClaw's `[[…]]` reply directives are removed.

use super::response::{MAX_OUTPUTS, MAX_SIMPLE_TEXT, Output, QuickReply, SkillResponse};
use clawbridge_core::text::markdown::{self, ChatStyle, LinkStyle};
use clawbridge_core::text::{chunk_text, strip_directives};

/// Pages of one answer beyond this are dropped (30 pages ≈ 90,000 characters).
pub const MAX_PAGES: usize = 30;

/// Plain text: KakaoTalk has no formatting marks.
const KAKAO: ChatStyle = ChatStyle {
    strong: "",
    emphasis: "",
    strike: "",
    bold_headings: false,
    quote: "",
    bullet: "•",
    rule: None,
    cell_separator: " · ",
    code_marks: false,
    links: LinkStyle::Collect,
    link_schemes: &["https://", "http://"],
    image_lines: true,
};

/// An answer with Markdown removed, and what it linked to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stripped {
    /// The text to show.
    pub text: String,
    /// `(label, url)` of markdown links, in order, without duplicates.
    pub links: Vec<(String, String)>,
    /// `(alt, url)` of images: markdown images and image URLs alone on a line.
    pub images: Vec<(String, String)>,
}

/// Removes Markdown the way a person would rewrite it for a chat message.
pub fn strip_markdown(answer: &str) -> Stripped {
    let rendered = markdown::render(&strip_directives(answer), &KAKAO);
    Stripped { text: rendered.text, links: rendered.links, images: rendered.images }
}

/// What one page component is, before it becomes an [`Output`].
#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Image(String, String),
    Links(Vec<(String, String)>),
    Card(String, String, Vec<(String, String)>),
}

/// Renders an answer into pages of at most three outputs each. Every page but the last carries
/// the `more_label` quick reply; pages beyond [`MAX_PAGES`] are dropped with a note.
pub fn render_answer(answer: &str, more_label: &str) -> Vec<SkillResponse> {
    let stripped = strip_markdown(answer);
    let mut parts: Vec<Part> = chunk_text(&stripped.text, MAX_SIMPLE_TEXT).into_iter().map(Part::Text).collect();
    let mut images = stripped.images.iter();
    let mut links: &[(String, String)] = &stripped.links;
    // A picture with links: one basicCard (the picture as thumbnail, the links as buttons).
    if !links.is_empty()
        && let Some((alt, url)) = images.next()
    {
        let take = links.len().min(3);
        parts.push(Part::Card(url.clone(), alt.clone(), links[..take].to_vec()));
        links = &links[take..];
    }
    for (alt, url) in images {
        parts.push(Part::Image(url.clone(), alt.clone()));
    }
    for group in links.chunks(3) {
        parts.push(Part::Links(group.to_vec()));
    }
    if parts.is_empty() {
        parts.push(Part::Text("…".to_owned()));
    }
    let mut pages: Vec<Vec<Part>> = parts.chunks(MAX_OUTPUTS).map(<[Part]>::to_vec).collect();
    if pages.len() > MAX_PAGES {
        pages.truncate(MAX_PAGES);
        if let Some(last) = pages.last_mut() {
            last.pop();
            last.push(Part::Text("(답변이 너무 길어 나머지는 생략했어요.)".to_owned()));
        }
    }
    let count = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| {
            let outputs = page
                .into_iter()
                .map(|part| match part {
                    Part::Text(text) => Output::text(&text),
                    Part::Image(url, alt) => Output::image(&url, &alt),
                    Part::Links(links) => Output::links_card("관련 링크", &links),
                    Part::Card(url, alt, links) => Output::picture_card(&url, &alt, &links),
                })
                .collect();
            let quick = if i + 1 < count { vec![QuickReply::message(more_label, more_label)] } else { Vec::new() };
            SkillResponse::new(outputs, quick)
        })
        .collect()
}

/// Puts `earlier` responses in front of `later` when all outputs fit in one response (≤ 3);
/// quick replies of the later one win. `None` when they do not fit together.
pub fn merge(earlier: &SkillResponse, later: &SkillResponse) -> Option<SkillResponse> {
    let (a, b) = (earlier.template.as_ref()?, later.template.as_ref()?);
    if a.outputs.len() + b.outputs.len() > MAX_OUTPUTS || !a.quick_replies.is_empty() {
        return None;
    }
    let outputs = a.outputs.iter().chain(&b.outputs).cloned().collect();
    Some(SkillResponse::new(outputs, b.quick_replies.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Markdown inputs for the snapshot tests: the SkillResponse pages each renders to.
    const SNAPSHOT_CASES: &[(&str, &str)] = &[
        ("nested_emphasis", "**굵게 *기울임* 그리고 ~~취소~~ 포함**, ***둘 다***, _밑줄_, 2~3일과 3~5일, `**코드**`"),
        (
            "lists",
            "순서:\n1. 설치\n   - `cargo build` 실행\n   - **결과** 확인\n2. 설정\n   1. 편집\n   2. 저장\n\n- 느슨한 항목\n\n- 다음 항목\n  이어지는 줄",
        ),
        (
            "table",
            "요금제:\n\n| 요금제 | 가격 | 비고 |\n|:--|--:|---|\n| **기본** | 5,000원 | *1인* 사용 |\n| 프로 | 20,000원 | [안내](https://shop.example/pro) |\n\n골라 주세요.",
        ),
        (
            "links_and_images",
            "[주문 조회](https://shop.example/orders), <https://shop.example/auto>, https://shop.example/a_b?x=*y*, [메일](mailto:a@shop.example), [다시](https://shop.example/orders)\n![상품](https://img.example/p.jpg)\nhttps://img.example/alone.png\n[리뷰](https://shop.example/r) [문의](https://shop.example/q)",
        ),
        ("code", "실행:\n```bash\nexport A=*b*   \n\necho __x__\n```\n그다음 `a_b`:\n\n    들여쓴 *코드*"),
        (
            "korean_reply",
            "[[reply_to_current]] # 배송 안내\n\n**배송**은 _보통_ 2~3일 걸려요.\n\n> 주문 조회는 [주문 페이지](https://shop.example/orders)에서 하세요.\n> > 제주는 하루 더\n\n- 서울: `1일`\n- 지방: 2일\n\n---\n감사합니다! [[audio_as_voice]]",
        ),
    ];

    #[test]
    fn markdown_snapshots() {
        for (name, markdown) in SNAPSHOT_CASES {
            let pages = render_answer(markdown, "더 보기");
            pages.iter().for_each(|p| p.validate().unwrap());
            insta::with_settings!({ description => *markdown, omit_expression => true }, {
                insta::assert_json_snapshot!(*name, pages);
            });
        }
    }

    #[test]
    fn long_answer_pages_snapshot() {
        // Each page's outputs, texts as their length and ends: where the 1000-character splits fell.
        let paragraph = "가나다라마바사 아자차카타파하. **굵게** 쓴 말도 있어요. ".repeat(25);
        let answer = format!(
            "## 긴 답변\n\n{paragraph}\n\n- 항목 하나\n- 항목 둘\n\n{paragraph}\n\n{paragraph}\n\n[자세히](https://shop.example/more)"
        );
        let pages = render_answer(&answer, "더 보기");
        pages.iter().for_each(|p| p.validate().unwrap());
        let summary: Vec<serde_json::Value> = serde_json::to_value(&pages)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|page| {
                let outputs: Vec<serde_json::Value> = page["template"]["outputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| match o["simpleText"]["text"].as_str() {
                        Some(text) => {
                            let chars: Vec<char> = text.chars().collect();
                            let ends: String = chars[chars.len().saturating_sub(16)..].iter().collect();
                            json!({"simpleText": chars.len(), "starts": chars.iter().take(24).collect::<String>(), "ends": ends})
                        }
                        None => o.clone(),
                    })
                    .collect();
                json!({"outputs": outputs, "quickReplies": page["template"]["quickReplies"]})
            })
            .collect();
        insta::assert_json_snapshot!(summary);
    }

    #[test]
    fn markdown_becomes_plain_text() {
        let s = strip_markdown(
            "# 안내\n\n**배송**은 _보통_ 2~3일 걸려요.\n\n- 서울: `1일`\n* 지방: 2일\n\n> 참고하세요\n\n---\n\n| 지역 | 기간 |\n|---|---|\n| 제주 | 3일 |\n\n```\ncode  block\n```\n2 * 3 = 6, snake_case 유지",
        );
        assert_eq!(
            s.text,
            "안내\n\n배송은 보통 2~3일 걸려요.\n\n• 서울: 1일\n• 지방: 2일\n\n참고하세요\n\n지역 · 기간\n제주 · 3일\n\ncode  block\n2 * 3 = 6, snake_case 유지"
        );
        assert!(s.links.is_empty() && s.images.is_empty());
    }

    #[test]
    fn links_and_images_are_collected() {
        let s = strip_markdown(
            "주문은 [주문 조회 페이지](https://shop.example/orders)에서 확인하세요.\n![상품 사진](https://img.example/a.jpg)\nhttps://img.example/b.png\n[다시](https://shop.example/orders)",
        );
        assert_eq!(s.text, "주문은 주문 조회 페이지에서 확인하세요.\n상품 사진\n다시");
        assert_eq!(s.links, vec![("주문 조회 페이지".to_owned(), "https://shop.example/orders".to_owned())]);
        assert_eq!(
            s.images,
            vec![
                ("상품 사진".to_owned(), "https://img.example/a.jpg".to_owned()),
                (String::new(), "https://img.example/b.png".to_owned())
            ]
        );
    }

    #[test]
    fn a_short_answer_is_one_simple_text() {
        let pages = render_answer("**안녕하세요!** 무엇을 도와드릴까요?", "더 보기");
        assert_eq!(pages.len(), 1);
        assert_eq!(
            serde_json::to_value(&pages[0]).unwrap(),
            json!({"version":"2.0","template":{"outputs":[{"simpleText":{"text":"안녕하세요! 무엇을 도와드릴까요?"}}]}})
        );
    }

    #[test]
    fn images_and_links_snapshot() {
        // Two pictures and four links: the first picture carries three links as a basicCard, the
        // second picture is a simpleImage, the fourth link goes to a textCard on the next page.
        let pages = render_answer(
            "사진: ![신상품](https://img.example/new.jpg) ![뒷면](https://img.example/back.jpg)\n\
             [상품 상세 설명 페이지로 이동](https://shop.example/p/1) [리뷰](https://shop.example/r) \
             [문의](https://shop.example/q) [매장](https://shop.example/s)",
            "더 보기",
        );
        assert_eq!(pages.len(), 2);
        assert_eq!(
            serde_json::to_value(&pages).unwrap(),
            json!([{"version":"2.0","template":{"outputs":[
               {"simpleText":{"text":"사진: 신상품 뒷면\n상품 상세 설명 페이지로 이동 리뷰 문의 매장"}},
               {"basicCard":{"description":"신상품","thumbnail":{"imageUrl":"https://img.example/new.jpg","altText":"신상품"},
                 "buttons":[{"label":"상품 상세 설명 페이지로…","action":"webLink","webLinkUrl":"https://shop.example/p/1"},
                            {"label":"리뷰","action":"webLink","webLinkUrl":"https://shop.example/r"},
                            {"label":"문의","action":"webLink","webLinkUrl":"https://shop.example/q"}],
                 "buttonLayout":"vertical"}},
               {"simpleImage":{"imageUrl":"https://img.example/back.jpg","altText":"뒷면"}}
            ],"quickReplies":[{"label":"더 보기","action":"message","messageText":"더 보기"}]}},
            {"version":"2.0","template":{"outputs":[
               {"textCard":{"description":"관련 링크","buttons":[{"label":"매장","action":"webLink","webLinkUrl":"https://shop.example/s"}],"buttonLayout":"vertical"}}
            ]}}])
        );
        pages.iter().for_each(|p| p.validate().unwrap());
    }

    #[test]
    fn a_picture_with_links_becomes_a_basic_card_snapshot() {
        let pages = render_answer(
            "새 메뉴가 나왔어요.\n![딸기 라떼](https://img.example/latte.jpg)\n[주문하기](https://shop.example/o) · [메뉴 전체 보기](https://shop.example/m)",
            "더 보기",
        );
        assert_eq!(
            serde_json::to_value(&pages[0]).unwrap(),
            json!({"version":"2.0","template":{"outputs":[
                {"simpleText":{"text":"새 메뉴가 나왔어요.\n딸기 라떼\n주문하기 · 메뉴 전체 보기"}},
                {"basicCard":{"description":"딸기 라떼","thumbnail":{"imageUrl":"https://img.example/latte.jpg","altText":"딸기 라떼"},
                  "buttons":[{"label":"주문하기","action":"webLink","webLinkUrl":"https://shop.example/o"},
                             {"label":"메뉴 전체 보기","action":"webLink","webLinkUrl":"https://shop.example/m"}],
                  "buttonLayout":"vertical"}}
            ]}})
        );
        pages[0].validate().unwrap();
    }

    #[test]
    fn a_long_answer_continues_behind_more() {
        let paragraph = "가나다라마바사 아자차카타파하. ".repeat(40); // 680 chars
        let answer = [paragraph.trim(); 6].join("\n\n");
        let pages = render_answer(&answer, "더 보기");
        assert_eq!(pages.len(), 2);
        for page in &pages {
            page.validate().unwrap();
        }
        assert_eq!(pages[0].outputs().len(), 3);
        let quick = &pages[0].template.as_ref().unwrap().quick_replies;
        assert_eq!(quick, &vec![QuickReply::message("더 보기", "더 보기")]);
        assert!(pages[1].template.as_ref().unwrap().quick_replies.is_empty());
        let all: String = pages.iter().map(SkillResponse::plain_text).collect::<Vec<_>>().join("\n");
        assert_eq!(all.matches("하.").count(), 240);
    }

    #[test]
    fn absurdly_long_answers_are_capped() {
        let pages = render_answer(&"word. ".repeat(40_000), "더 보기");
        assert_eq!(pages.len(), MAX_PAGES);
        assert!(pages.last().unwrap().plain_text().contains("생략"));
        pages.iter().for_each(|p| p.validate().unwrap());
    }

    #[test]
    fn empty_answers_still_render_validly() {
        let pages = render_answer("  \n ", "더 보기");
        assert_eq!(pages.len(), 1);
        pages[0].validate().unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn every_rendered_page_is_within_kakaos_limits(
            text in "([a-z가-힣 .!?*_#`>|\\-\n]|\\[[a-z가-힣 ]{0,30}\\]\\(https://[a-z]{1,8}\\.example/[a-z]{0,5}(\\.png)?\\)){0,600}"
        ) {
            let pages = render_answer(&text, "더 보기");
            proptest::prop_assert!(!pages.is_empty() && pages.len() <= MAX_PAGES);
            for (i, page) in pages.iter().enumerate() {
                proptest::prop_assert!(page.validate().is_ok(), "{:?}", page.validate());
                let more = !page.template.as_ref().unwrap().quick_replies.is_empty();
                proptest::prop_assert_eq!(more, i + 1 < pages.len());
            }
        }
    }

    #[test]
    fn merging_keeps_order_and_the_limit() {
        let a = SkillResponse::text("first");
        let b = render_answer("second", "더 보기").remove(0);
        let merged = merge(&a, &b).unwrap();
        assert_eq!(merged.plain_text(), "first\nsecond");
        let three = SkillResponse::new(vec![Output::text("1"), Output::text("2"), Output::text("3")], vec![]);
        assert!(merge(&three, &b).is_none());
    }
}
