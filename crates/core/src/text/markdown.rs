//! The agent's Markdown → chat text, rendered from pulldown-cmark events.
//!
//! Chat apps show a few marks of their own (WhatsApp `*bold*`, `_italic_`, `~strike~`, ```` ``` ````)
//! or none at all (KakaoTalk), and no headings, tables or link syntax. [`render`] parses the
//! Markdown (CommonMark with tables and strike-through) and writes every construct the way a
//! [`ChatStyle`] says. The layout stays the author's: a line break in a paragraph stays a line
//! break, and blocks are separated by a blank line only where the source had one.
//!
//! pulldown-cmark has no GFM "autolink literal" extension, so bare URLs would be read as Markdown
//! (`?x=*y*` as emphasis); they are turned into `<autolinks>` first and come out untouched.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};
use std::borrow::Cow;
use std::ops::Range;

/// How one chat app shows Markdown.
#[derive(Clone, Copy, Debug)]
pub struct ChatStyle {
    /// Marks around bold, italic and struck-through text; `""` drops the emphasis.
    pub strong: &'static str,
    /// See [`ChatStyle::strong`].
    pub emphasis: &'static str,
    /// See [`ChatStyle::strong`].
    pub strike: &'static str,
    /// Headings and table headers in the `strong` mark (else plain lines).
    pub bold_headings: bool,
    /// Written before every line of a block quote.
    pub quote: &'static str,
    /// The marker of a bullet-list item (ordered items keep the author's number).
    pub bullet: &'static str,
    /// What a thematic break (`---`) becomes; `None` drops it.
    pub rule: Option<&'static str>,
    /// Between the cells of a table row (each row is one line).
    pub cell_separator: &'static str,
    /// Code keeps its backticks and fences (the app shows them as monospace); else plain text.
    pub code_marks: bool,
    /// Links: written inline as `label (url)`, or shown as their label and collected.
    pub links: LinkStyle,
    /// Link targets that count as links (prefixes, lower case); other links stay as written.
    pub link_schemes: &'static [&'static str],
    /// An image URL alone on a line of a paragraph is an image, not text.
    pub image_lines: bool,
}

/// What happens to `[label](url)` and `![alt](url)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStyle {
    /// `label (url)` (just `url` when the label is the URL); images as `alt (url)`.
    Inline,
    /// The label (the alt text for images) in the text; `(label, url)` in [`Rendered`].
    Collect,
}

/// Rendered text and, with [`LinkStyle::Collect`], what it linked to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The text to show, trimmed.
    pub text: String,
    /// `(label, url)` of links, in order, one per URL.
    pub links: Vec<(String, String)>,
    /// `(alt, url)` of images, in order, one per URL.
    pub images: Vec<(String, String)>,
}

/// Image URLs are fetched by the chat app: web URLs only.
const IMAGE_SCHEMES: &[&str] = &["https://", "http://"];

fn options() -> Options {
    // Subscript makes a single `~` its own mark, so `2~3일` and `1~2 or 3~4` stay text, while
    // `~~gone~~` is strike-through.
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_SUBSCRIPT
}

/// Renders `markdown` in `style`.
pub fn render(markdown: &str, style: &ChatStyle) -> Rendered {
    let source = protect_bare_urls(markdown);
    let mut events: Vec<(Event<'_>, Range<usize>)> = Parser::new_ext(&source, options()).into_offset_iter().collect();
    if style.image_lines {
        events = lift_image_lines(events);
    }
    let mut writer = Writer::new(&source, style);
    for (event, range) in events {
        writer.event(event, range);
    }
    writer.finish()
}

/// `http(s)://…` written as plain text becomes `<http(s)://…>`, outside code, links and HTML. The
/// URL ends at whitespace, `<` or `>`, without trailing punctuation or an unbalanced `)` (as
/// GFM's autolinks do), and inside the block it starts in.
fn protect_bare_urls(markdown: &str) -> Cow<'_, str> {
    if !markdown.contains("http") {
        return Cow::Borrowed(markdown);
    }
    let mut urls: Vec<Range<usize>> = Vec::new();
    let mut blocks: Vec<Range<usize>> = Vec::new();
    let (mut in_link, mut in_code) = (0usize, false);
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        match event {
            Event::Start(Tag::Link { .. } | Tag::Image { .. }) => in_link += 1,
            Event::End(TagEnd::Link | TagEnd::Image) => in_link = in_link.saturating_sub(1),
            Event::Start(Tag::CodeBlock(_)) => in_code = true,
            Event::End(TagEnd::CodeBlock) => in_code = false,
            Event::Start(tag) if is_block(&tag) => blocks.push(range),
            Event::End(end) if is_block_end(end) => {
                blocks.pop();
            }
            Event::Text(_) if in_link == 0 && !in_code => {
                let limit = blocks.last().map_or(markdown.len(), |b| b.end);
                for start in url_starts(markdown, range) {
                    if urls.last().is_some_and(|u| start < u.end) {
                        continue;
                    }
                    if let Some(end) = url_end(markdown, start, limit) {
                        urls.push(start..end);
                    }
                }
            }
            _ => {}
        }
    }
    if urls.is_empty() {
        return Cow::Borrowed(markdown);
    }
    let mut out = String::with_capacity(markdown.len() + 2 * urls.len());
    let mut at = 0;
    for url in urls {
        out.push_str(&markdown[at..url.start]);
        out.push('<');
        out.push_str(&markdown[url.clone()]);
        out.push('>');
        at = url.end;
    }
    out.push_str(&markdown[at..]);
    Cow::Owned(out)
}

fn is_block(tag: &Tag<'_>) -> bool {
    !matches!(
        tag,
        Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Subscript
            | Tag::Superscript
            | Tag::Link { .. }
            | Tag::Image { .. }
    )
}

fn is_block_end(end: TagEnd) -> bool {
    !matches!(
        end,
        TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Subscript
            | TagEnd::Superscript
            | TagEnd::Link
            | TagEnd::Image
    )
}

/// Where `http://` or `https://` starts a word in `source[range]`.
fn url_starts(source: &str, range: Range<usize>) -> Vec<usize> {
    let text = &source[range.clone()];
    let mut starts = Vec::new();
    for (i, _) in text.match_indices("http") {
        let rest = &text[i..];
        if !(rest.starts_with("https://") || rest.starts_with("http://")) {
            continue;
        }
        let at = range.start + i;
        if source[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric()) {
            starts.push(at);
        }
    }
    starts
}

fn url_end(source: &str, start: usize, limit: usize) -> Option<usize> {
    let limit = limit.max(start).min(source.len());
    let run = &source[start..limit];
    let mut url =
        &run[..run.find(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>').unwrap_or(run.len())];
    loop {
        let trimmed = url.trim_end_matches(['?', '!', '.', ',', ':', ';', '*', '_', '~', '\'', '"']);
        let trimmed = match trimmed.strip_suffix(')') {
            Some(inner) if trimmed.matches(')').count() > trimmed.matches('(').count() => inner,
            _ => trimmed,
        };
        if trimmed.len() == url.len() {
            break;
        }
        url = trimmed;
    }
    let scheme = if url.starts_with("https://") { 8 } else { 7 };
    (url.len() > scheme).then_some(start + url.len())
}

/// A URL `https://…/x.png` (or `.jpg`, `.jpeg`, `.gif`, `.webp`), query and fragment aside.
pub fn is_image_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let path = lower.split(['?', '#']).next().unwrap_or("");
    IMAGE_SCHEMES.iter().any(|s| lower.starts_with(s))
        && !text.contains(char::is_whitespace)
        && [".png", ".jpg", ".jpeg", ".gif", ".webp"].iter().any(|ext| path.ends_with(ext))
}

/// Replaces a paragraph line that is only an image URL by an image (and drops one of the line
/// breaks around it, so the text closes up).
fn lift_image_lines(events: Vec<(Event<'_>, Range<usize>)>) -> Vec<(Event<'_>, Range<usize>)> {
    let mut out = Vec::with_capacity(events.len());
    let mut paragraph: Option<Vec<(Event<'_>, Range<usize>)>> = None;
    for (event, range) in events {
        match (&event, paragraph.as_mut()) {
            (Event::Start(Tag::Paragraph), None) => {
                out.push((event, range));
                paragraph = Some(Vec::new());
            }
            (Event::End(TagEnd::Paragraph), Some(_)) => {
                out.extend(lift_lines(paragraph.take().unwrap_or_default()));
                out.push((event, range));
            }
            (_, Some(inline)) => inline.push((event, range)),
            (_, None) => out.push((event, range)),
        }
    }
    out
}

fn lift_lines(inline: Vec<(Event<'_>, Range<usize>)>) -> Vec<(Event<'_>, Range<usize>)> {
    // Tokens: lines and the breaks between them (None once dropped).
    let mut lines: Vec<Vec<(Event<'_>, Range<usize>)>> = vec![Vec::new()];
    let mut breaks: Vec<Option<(Event<'_>, Range<usize>)>> = Vec::new();
    for (event, range) in inline {
        if matches!(event, Event::SoftBreak | Event::HardBreak) {
            breaks.push(Some((event, range)));
            lines.push(Vec::new());
        } else if let Some(line) = lines.last_mut() {
            line.push((event, range));
        }
    }
    for k in 0..lines.len() {
        let Some(url) = image_line_url(&lines[k]) else { continue };
        let start = lines[k].first().map_or(0, |(_, r)| r.start);
        let end = lines[k].last().map_or(start, |(_, r)| r.end);
        let tag = Tag::Image { link_type: LinkType::Autolink, dest_url: url.into(), title: "".into(), id: "".into() };
        lines[k] = vec![(Event::Start(tag), start..end), (Event::End(TagEnd::Image), start..end)];
        if k > 0 && breaks[k - 1].is_some() {
            breaks[k - 1] = None;
        } else if k < breaks.len() {
            breaks[k] = None;
        }
    }
    let mut out = Vec::new();
    let mut breaks = breaks.into_iter();
    for line in lines {
        out.extend(line);
        if let Some(Some(b)) = breaks.next() {
            out.push(b);
        }
    }
    out
}

/// The URL when a line is only an image URL (as an autolink or as text).
fn image_line_url(line: &[(Event<'_>, Range<usize>)]) -> Option<String> {
    let content: Vec<&Event<'_>> =
        line.iter().map(|(e, _)| e).filter(|e| !matches!(e, Event::Text(t) if t.trim().is_empty())).collect();
    let url = match content.as_slice() {
        [Event::Text(text)] => text.trim().to_owned(),
        [
            Event::Start(Tag::Link { link_type: LinkType::Autolink, dest_url, .. }),
            Event::Text(_),
            Event::End(TagEnd::Link),
        ] => dest_url.to_string(),
        _ => return None,
    };
    is_image_url(&url).then_some(url)
}

/// The separator owed before the next block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    Line,
    Blank,
}

#[derive(Debug)]
enum Container {
    Quote,
    Item { marker: String, used: bool },
}

#[derive(Debug)]
enum Capture {
    /// Heading text, table cell, HTML block, code block: written when the block ends.
    Block,
    /// A link or image label; `None` for an autolink, whose label is its URL.
    Link { url: Option<String>, image: bool },
}

struct Writer<'s> {
    source: &'s str,
    style: &'s ChatStyle,
    out: String,
    links: Vec<(String, String)>,
    images: Vec<(String, String)>,
    containers: Vec<Container>,
    /// Ordered (true) or bullet list, innermost last.
    lists: Vec<bool>,
    captures: Vec<(Capture, String)>,
    at_line_start: bool,
    pending: Option<Gap>,
    /// Source end of the last content written, and of the event being handled.
    last_end: usize,
    event_end: usize,
    /// Nesting depth of each emphasis, and of blocks already in bold (headings, table headers).
    strong: u32,
    emphasis: u32,
    strike: u32,
    in_bold_block: u32,
    /// The marks written and not yet closed, outermost first.
    open_marks: Vec<&'static str>,
    table_head: bool,
    row_started: bool,
    cells_in_row: usize,
    /// Depth of tags being skipped because the link was written as its source.
    skipping: u32,
}

impl<'s> Writer<'s> {
    fn new(source: &'s str, style: &'s ChatStyle) -> Self {
        Self {
            source,
            style,
            out: String::with_capacity(source.len()),
            links: Vec::new(),
            images: Vec::new(),
            containers: Vec::new(),
            lists: Vec::new(),
            captures: Vec::new(),
            at_line_start: true,
            pending: None,
            last_end: 0,
            event_end: 0,
            strong: 0,
            emphasis: 0,
            strike: 0,
            in_bold_block: 0,
            open_marks: Vec::new(),
            table_head: false,
            row_started: false,
            cells_in_row: 0,
            skipping: 0,
        }
    }

    fn finish(self) -> Rendered {
        Rendered { text: self.out.trim().to_owned(), links: self.links, images: self.images }
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        if self.skipping > 0 {
            match event {
                Event::Start(_) => self.skipping += 1,
                Event::End(_) => self.skipping -= 1,
                _ => {}
            }
            return;
        }
        self.event_end = range.end;
        match event {
            Event::Start(tag) => self.start(tag, range),
            Event::End(end) => self.end(end),
            Event::Text(text) => self.push(&text),
            Event::Code(code) => {
                if self.style.code_marks {
                    self.push(&self.source[range]);
                } else {
                    self.push(&code);
                }
            }
            Event::Html(html) | Event::InlineHtml(html) => self.push(&html),
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                if let Some(rule) = self.style.rule {
                    self.block(range.start);
                    self.push(rule);
                }
            }
            // Not enabled in `options()`; written as the author wrote them.
            Event::InlineMath(_) | Event::DisplayMath(_) | Event::FootnoteReference(_) | Event::TaskListMarker(_) => {
                self.push(&self.source[range]);
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        let style = self.style;
        match tag {
            Tag::Paragraph | Tag::Table(_) => self.block(range.start),
            Tag::Heading { .. } => {
                self.block(range.start);
                self.in_bold_block += u32::from(style.bold_headings);
                self.captures.push((Capture::Block, String::new()));
            }
            Tag::BlockQuote(_) => {
                self.block(range.start);
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(_) => {
                self.block(range.start);
                self.captures.push((Capture::Block, String::new()));
            }
            Tag::HtmlBlock => {
                self.block(range.start);
                self.captures.push((Capture::Block, String::new()));
            }
            Tag::List(first) => {
                self.block(range.start);
                self.lists.push(first.is_some());
            }
            Tag::Item => {
                self.block(range.start);
                let marker = if self.lists.last() == Some(&true) {
                    ordered_marker(&self.source[range.start..])
                } else {
                    style.bullet.to_owned()
                };
                self.containers.push(Container::Item { marker, used: false });
            }
            Tag::TableHead | Tag::TableRow => {
                if self.row_started {
                    self.push("\n");
                }
                self.row_started = true;
                self.cells_in_row = 0;
                if matches!(tag, Tag::TableHead) {
                    self.table_head = true;
                    self.in_bold_block += u32::from(style.bold_headings);
                }
            }
            Tag::TableCell => {
                if self.cells_in_row > 0 {
                    self.push(style.cell_separator);
                }
                self.cells_in_row += 1;
                self.captures.push((Capture::Block, String::new()));
            }
            Tag::Emphasis => self.mark(true, MarkKind::Emphasis),
            Tag::Strong => self.mark(true, MarkKind::Strong),
            Tag::Strikethrough => self.mark(true, MarkKind::Strike),
            Tag::Subscript | Tag::Superscript => self.push(&self.source[range.start..range.start + 1]),
            Tag::Link { link_type, dest_url, .. } => match link_type {
                LinkType::Autolink | LinkType::Email => {
                    self.captures.push((Capture::Link { url: None, image: false }, String::new()))
                }
                _ if has_scheme(&dest_url, style.link_schemes) => {
                    self.captures
                        .push((Capture::Link { url: Some(lowercase_scheme(&dest_url)), image: false }, String::new()));
                }
                _ => self.verbatim(range),
            },
            Tag::Image { dest_url, .. } => {
                if has_scheme(&dest_url, IMAGE_SCHEMES) {
                    self.captures
                        .push((Capture::Link { url: Some(lowercase_scheme(&dest_url)), image: true }, String::new()));
                } else {
                    self.verbatim(range);
                }
            }
            // Not enabled in `options()`: their content is written as it comes.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => self.block(range.start),
        }
    }

    fn end(&mut self, end: TagEnd) {
        let style = self.style;
        match end {
            TagEnd::Heading(_) => {
                self.in_bold_block -= u32::from(style.bold_headings);
                let text = self.take_capture();
                if style.bold_headings {
                    let bold: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{}{l}{}", style.strong, style.strong))
                        .collect();
                    self.push(&bold.join("\n"));
                } else {
                    self.push(text.trim());
                }
            }
            TagEnd::BlockQuote(_) => {
                self.containers.pop();
            }
            TagEnd::CodeBlock => {
                let code = self.take_capture();
                if style.code_marks {
                    let newline = if code.is_empty() || code.ends_with('\n') { "" } else { "\n" };
                    self.push(&format!("```\n{code}{newline}```"));
                } else {
                    let lines: Vec<&str> = code.trim_end_matches('\n').lines().map(str::trim_end).collect();
                    self.push(&lines.join("\n"));
                }
            }
            TagEnd::HtmlBlock => {
                let html = self.take_capture();
                self.push(html.trim_end());
            }
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Item => {
                if matches!(self.containers.last(), Some(Container::Item { used: false, .. })) {
                    // An empty item still shows its marker.
                    self.begin_content();
                    self.out.truncate(self.out.trim_end_matches(' ').len());
                    self.last_end = self.event_end;
                }
                self.containers.pop();
            }
            TagEnd::Table => self.row_started = false,
            TagEnd::TableHead => {
                self.table_head = false;
                self.in_bold_block -= u32::from(style.bold_headings);
            }
            TagEnd::TableCell => {
                let cell = self.take_capture();
                let cell = cell.trim();
                if self.table_head && style.bold_headings && !cell.is_empty() {
                    self.push(&format!("{}{cell}{}", style.strong, style.strong));
                } else {
                    self.push(cell);
                }
            }
            TagEnd::Emphasis => self.mark(false, MarkKind::Emphasis),
            TagEnd::Strong => self.mark(false, MarkKind::Strong),
            TagEnd::Strikethrough => self.mark(false, MarkKind::Strike),
            TagEnd::Subscript => self.push("~"),
            TagEnd::Superscript => self.push("^"),
            TagEnd::Link | TagEnd::Image => self.end_link(),
            TagEnd::Paragraph
            | TagEnd::TableRow
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => {}
        }
    }

    fn end_link(&mut self) {
        let Some((Capture::Link { url, image }, label)) = self.captures.pop() else { return };
        let Some(url) = url else {
            // An autolink: its label is the URL (or address) as written.
            self.push(&label);
            return;
        };
        match (self.style.links, image) {
            (LinkStyle::Inline, _) => {
                if label.trim().is_empty() || label.trim() == url.trim() {
                    self.push(&url);
                } else {
                    self.push(&format!("{label} ({url})"));
                }
            }
            (LinkStyle::Collect, false) => {
                let shown = if label.trim().is_empty() { url.clone() } else { label };
                self.push(&shown);
                push_unique(&mut self.links, (shown, url));
            }
            (LinkStyle::Collect, true) => {
                self.push(&label);
                push_unique(&mut self.images, (label, url));
            }
        }
    }

    /// Writes a link as it stands in the source and skips its events.
    fn verbatim(&mut self, range: Range<usize>) {
        self.push(&self.source[range]);
        self.skipping = 1;
    }

    fn take_capture(&mut self) -> String {
        self.captures.pop().map(|(_, text)| text).unwrap_or_default()
    }

    fn mark(&mut self, open: bool, kind: MarkKind) {
        let style = self.style;
        let (depth, mark) = match kind {
            MarkKind::Strong => (&mut self.strong, if self.in_bold_block > 0 { "" } else { style.strong }),
            MarkKind::Emphasis => (&mut self.emphasis, style.emphasis),
            MarkKind::Strike => (&mut self.strike, style.strike),
        };
        let outermost = if open {
            *depth += 1;
            *depth == 1
        } else {
            *depth = depth.saturating_sub(1);
            *depth == 0
        };
        if outermost && !mark.is_empty() {
            if open {
                self.open_marks.push(mark);
            } else {
                self.open_marks.pop();
            }
            self.push(mark);
        }
    }

    /// A line break inside emphasis: chat apps do not carry a mark across lines, so the open
    /// marks are closed before it and opened again after.
    fn line_break(&mut self) {
        let close: String = self.open_marks.iter().rev().copied().collect();
        let reopen: String = self.open_marks.concat();
        self.push(&close);
        self.push("\n");
        self.push(&reopen);
    }

    /// A block starts at `start`: it is owed a line break after earlier content, or a blank line
    /// when the source has one in between.
    fn block(&mut self, start: usize) {
        if self.out.is_empty() || !self.captures.is_empty() {
            return;
        }
        let gap = gap(self.source, self.last_end, start);
        self.pending = self.pending.max(Some(gap));
    }

    /// Writes `text` at the current place: into the open capture, or into the output with the
    /// separator owed and the line prefixes of quotes and list items.
    fn push(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some((_, capture)) = self.captures.last_mut() {
            capture.push_str(text);
            return;
        }
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.out.push('\n');
                self.at_line_start = true;
            }
            if !line.is_empty() {
                self.begin_content();
                self.out.push_str(line);
            }
        }
        self.last_end = self.event_end;
    }

    fn begin_content(&mut self) {
        if let Some(gap) = self.pending.take()
            && !self.out.is_empty()
        {
            self.out.push_str(if gap == Gap::Blank { "\n\n" } else { "\n" });
            self.at_line_start = true;
        }
        if !self.at_line_start {
            return;
        }
        self.at_line_start = false;
        for container in &mut self.containers {
            match container {
                Container::Quote => self.out.push_str(self.style.quote),
                Container::Item { marker, used: false } => {
                    self.out.push_str(marker);
                    self.out.push(' ');
                }
                Container::Item { marker, used: true } => {
                    self.out.extend(std::iter::repeat_n(' ', marker.chars().count() + 1));
                }
            }
            if let Container::Item { used, .. } = container {
                *used = true;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum MarkKind {
    Strong,
    Emphasis,
    Strike,
}

/// A line break, or a blank line when a blank line (or a quote's `>` alone) lies between the
/// content written last and the next block.
fn gap(source: &str, last_end: usize, next_start: usize) -> Gap {
    let from = source[..last_end.min(next_start)].trim_end().len();
    let between = &source[from..next_start];
    let mut lines: Vec<&str> = between.split('\n').collect();
    // The first piece ends the previous line, the last one begins the block's own.
    lines.pop();
    let blank = lines.iter().skip(1).any(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '>').is_empty());
    if blank { Gap::Blank } else { Gap::Line }
}

/// The author's `3.` or `3)` at the start of an ordered item.
fn ordered_marker(item: &str) -> String {
    let item = item.trim_start();
    let digits = item.find(|c: char| !c.is_ascii_digit()).unwrap_or(item.len());
    match item[digits..].chars().next() {
        Some(delimiter @ ('.' | ')')) if digits > 0 => format!("{}{delimiter}", &item[..digits]),
        _ => "1.".to_owned(),
    }
}

fn has_scheme(url: &CowStr<'_>, schemes: &[&str]) -> bool {
    let lower = url.to_ascii_lowercase();
    schemes.iter().any(|s| lower.starts_with(s))
}

/// `HTTPS://a/B` → `https://a/B`: schemes are case-insensitive (RFC 3986 §3.1), but platforms
/// check them as written (Kakao refuses a button to `httPs://…`).
fn lowercase_scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, rest)) => format!("{}:{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    }
}

fn push_unique(list: &mut Vec<(String, String)>, item: (String, String)) {
    if !list.iter().any(|(_, url)| *url == item.1) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKS: ChatStyle = ChatStyle {
        strong: "*",
        emphasis: "_",
        strike: "~",
        bold_headings: true,
        quote: "> ",
        bullet: "-",
        rule: Some("---"),
        cell_separator: " | ",
        code_marks: true,
        links: LinkStyle::Inline,
        link_schemes: &["https://", "http://"],
        image_lines: false,
    };

    const PLAIN: ChatStyle = ChatStyle {
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

    fn marks(md: &str) -> String {
        render(md, &MARKS).text
    }

    #[test]
    fn link_and_image_schemes_are_written_in_lowercase() {
        let out = render("[a](httPs://shop.example/O/1) ![b](HTTPS://cdn.example/X.jpg)", &PLAIN);
        assert_eq!(out.links, vec![("a".to_owned(), "https://shop.example/O/1".to_owned())]);
        assert_eq!(out.images, vec![("b".to_owned(), "https://cdn.example/X.jpg".to_owned())]);
    }

    #[test]
    fn blank_line_runs_collapse_to_one() {
        assert_eq!(marks("a\n\n\n\nb\n \n\t\nc"), "a\n\nb\n\nc");
        assert_eq!(marks("a\nb"), "a\nb");
    }

    #[test]
    fn blocks_keep_the_authors_spacing() {
        assert_eq!(marks("Intro:\n- a\n- b\n\nAfter"), "Intro:\n- a\n- b\n\nAfter");
        assert_eq!(marks("- a\n\n- b"), "- a\n\n- b");
        assert_eq!(marks("> one\n>\n> two"), "> one\n\n> two");
        assert_eq!(marks("a\n***\nb"), "a\n---\nb");
        assert_eq!(render("a\n***\nb", &PLAIN).text, "a\nb");
        assert_eq!(render("a\n\n***\n\nb", &PLAIN).text, "a\n\nb");
    }

    #[test]
    fn nested_lists_are_indented_under_their_item() {
        assert_eq!(
            marks("1. first\n   - sub *one*\n   - sub two\n2. second\n10. tenth"),
            "1. first\n   - sub _one_\n   - sub two\n2. second\n10. tenth"
        );
        assert_eq!(marks("- a\n  > quoted\n  more"), "- a\n  > quoted\n  > more");
        assert_eq!(marks("-\n- b"), "-\n- b");
        assert_eq!(marks("1) x"), "1) x");
    }

    #[test]
    fn marks_do_not_span_lines() {
        assert_eq!(marks("a **b *c\nd* e** f"), "a *b _c_*\n*_d_ e* f");
        assert_eq!(marks("one *two\nthree*\n==="), "*one _two_*\n*_three_*");
    }

    #[test]
    fn bare_urls_are_never_markdown() {
        assert_eq!(marks("go https://ex.com/a_b?q=*x*, ok"), "go https://ex.com/a_b?q=*x*, ok");
        assert_eq!(
            marks("(https://ex.com/a_(b)_c) **https://ex.com/x_y**"),
            "(https://ex.com/a_(b)_c) *https://ex.com/x_y*"
        );
        assert_eq!(marks("`https://ex.com/*a*`"), "`https://ex.com/*a*`");
        assert_eq!(marks("xhttps://a_b_"), "xhttps://a_b_");
        assert_eq!(marks("| u | v |\n|---|---|\n| https://ex.com/a_b|c |"), "*u* | *v*\nhttps://ex.com/a_b | c");
    }

    #[test]
    fn image_lines_become_images() {
        let r = render("a\nhttps://ex.com/1.png\nhttps://ex.com/2.jpg\nb", &PLAIN);
        assert_eq!(r.text, "a\nb");
        assert_eq!(r.images.len(), 2);
        let r = render("https://ex.com/1.png\n\nnext", &PLAIN);
        assert_eq!(r.text, "next");
        assert_eq!(render("- https://ex.com/1.png", &PLAIN).images.len(), 0);
    }

    #[test]
    fn code_blocks_pass_through() {
        assert_eq!(marks("```rust\nfn  main() {}\n\n\n}\n```"), "```\nfn  main() {}\n\n\n}\n```");
        assert_eq!(marks("    indented *code*"), "```\nindented *code*\n```");
        assert_eq!(marks("```\nnot closed"), "```\nnot closed\n```");
        assert_eq!(render("```\ncode  \n```", &PLAIN).text, "code");
    }
}
