//! Markdown to sanitised HTML, done once when a post is written (reads never render Markdown).
//!
//! pulldown-cmark passes raw HTML in the Markdown through, so its output is untrusted: ammonia
//! then keeps only an allow-list of tags and attributes (no `<script>`, no `on*=` handlers, no
//! `javascript:` URLs) and adds `rel="noopener noreferrer"` to links.

use pulldown_cmark::{Event, Options, Parser, TagEnd};

/// How long an excerpt on a listing may be, in characters.
const EXCERPT_CHARS: usize = 240;

/// A post body rendered for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Sanitised HTML, safe to insert into a page unescaped.
    pub html: String,
    /// The first words of the text, plain (templates escape it).
    pub excerpt: String,
}

/// Renders `markdown` to sanitised HTML and a plain-text excerpt.
pub fn render(markdown: &str) -> Rendered {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    Rendered {
        html: ammonia::clean(&unsafe_html),
        excerpt: excerpt(markdown, options),
    }
}

fn excerpt(markdown: &str, options: Options) -> String {
    let mut text = String::new();
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Text(chunk) | Event::Code(chunk) => text.push_str(&chunk),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            // The end of a block (paragraph, heading, item…) separates words; inline ends don't.
            Event::End(end)
                if !matches!(
                    end,
                    TagEnd::Emphasis
                        | TagEnd::Strong
                        | TagEnd::Strikethrough
                        | TagEnd::Link
                        | TagEnd::Image
                ) =>
            {
                text.push(' ')
            }
            _ => {}
        }
        if text.chars().count() > EXCERPT_CHARS {
            break;
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= EXCERPT_CHARS {
        return text;
    }
    let cut: String = text.chars().take(EXCERPT_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown() {
        let rendered = render("# Hi\n\nSome *emphasis* and `code`.");
        assert!(rendered.html.contains("<h1>Hi</h1>"));
        assert!(rendered.html.contains("<em>emphasis</em>"));
        assert_eq!(rendered.excerpt, "Hi Some emphasis and code.");
    }

    #[test]
    fn strips_scripts_handlers_and_javascript_urls() {
        let rendered = render(
            "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[x](javascript:alert(3))",
        );
        assert!(!rendered.html.contains("<script"));
        assert!(!rendered.html.contains("onerror"));
        assert!(!rendered.html.contains("javascript:"));
    }

    #[test]
    fn long_text_is_cut_at_a_word() {
        let rendered = render(&"word ".repeat(100));
        assert!(rendered.excerpt.ends_with("word…"));
        assert!(rendered.excerpt.chars().count() <= EXCERPT_CHARS + 1);
    }
}
