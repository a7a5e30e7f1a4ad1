//! A small TwiML builder that can only produce valid documents.
//!
//! The types follow Twilio's TwiML reference: a `<Response>` holds verbs; `<Gather>` may nest only
//! `<Say>`, `<Play>` and `<Pause>` (so [`Gather`] holds [`Prompt`]s, not verbs); `<Dial>` nests
//! `<Number>`s; `<Play>` is either a URL or `digits`, never both. Text and attributes are
//! XML-escaped on output, and the document starts with the XML declaration.

use std::fmt::Write;

use axum::http::header;
use axum::response::{IntoResponse, Response as HttpResponse};

/// What Twilio expects a TwiML answer to be labelled with.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// How `<Say>` speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voice {
    pub voice: String,
    pub language: String,
}

impl From<&crate::config::Voice> for Voice {
    fn from(voice: &crate::config::Voice) -> Self {
        Self {
            voice: voice.voice.clone(),
            language: voice.language.clone(),
        }
    }
}

/// Something a caller hears: allowed at the top level and inside `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Say {
        text: String,
        voice: Voice,
    },
    /// An audio file Twilio fetches and plays.
    PlayUrl(String),
    /// DTMF tones Twilio generates: `0-9`, `*`, `#`, and `w` for a half-second wait.
    PlayDigits(String),
    Pause {
        seconds: u32,
    },
}

/// `<Gather input="dtmf">`: collects keys, then POSTs them as `Digits` to `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub action: String,
    pub timeout_seconds: u32,
    pub finish_on_key: char,
    pub prompts: Vec<Prompt>,
}

/// `<Dial>` to one or more numbers; Twilio POSTs the outcome to `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub action: String,
    pub timeout_seconds: u32,
    pub caller_id: Option<String>,
    pub numbers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Verb {
    Prompt(Prompt),
    Gather(Gather),
    Dial(Dial),
    Hangup,
    Reject,
}

/// A `<Response>` document under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    verbs: Vec<Verb>,
}

impl Response {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn say(mut self, voice: &Voice, text: &str) -> Self {
        if !text.is_empty() {
            self.verbs.push(Verb::Prompt(Prompt::Say {
                text: text.to_owned(),
                voice: voice.clone(),
            }));
        }
        self
    }

    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.verbs.push(Verb::Prompt(prompt));
        self
    }

    pub fn gather(mut self, gather: Gather) -> Self {
        self.verbs.push(Verb::Gather(gather));
        self
    }

    pub fn dial(mut self, dial: Dial) -> Self {
        self.verbs.push(Verb::Dial(dial));
        self
    }

    /// Ends the call. Nothing after it would be executed, so nothing can be added.
    pub fn hangup(mut self) -> Document {
        self.verbs.push(Verb::Hangup);
        Document(self.render())
    }

    /// Refuses the call without answering it (the caller hears it ring out or busy).
    pub fn reject(mut self) -> Document {
        self.verbs.push(Verb::Reject);
        Document(self.render())
    }

    /// Ends the document here; Twilio hangs up after the last verb.
    pub fn finish(self) -> Document {
        Document(self.render())
    }

    fn render(&self) -> String {
        let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        out.push_str("<Response>");
        for verb in &self.verbs {
            match verb {
                Verb::Prompt(prompt) => render_prompt(&mut out, prompt),
                Verb::Gather(gather) => {
                    let _ = write!(
                        out,
                        r#"<Gather input="dtmf" action="{}" method="POST" timeout="{}" finishOnKey="{}">"#,
                        escape(&gather.action),
                        gather.timeout_seconds,
                        escape(&gather.finish_on_key.to_string()),
                    );
                    for prompt in &gather.prompts {
                        render_prompt(&mut out, prompt);
                    }
                    out.push_str("</Gather>");
                }
                Verb::Dial(dial) => {
                    let _ = write!(
                        out,
                        r#"<Dial action="{}" method="POST" timeout="{}" answerOnBridge="true""#,
                        escape(&dial.action),
                        dial.timeout_seconds,
                    );
                    if let Some(caller_id) = &dial.caller_id {
                        let _ = write!(out, r#" callerId="{}""#, escape(caller_id));
                    }
                    out.push('>');
                    for number in &dial.numbers {
                        let _ = write!(out, "<Number>{}</Number>", escape(number));
                    }
                    out.push_str("</Dial>");
                }
                Verb::Hangup => out.push_str("<Hangup/>"),
                Verb::Reject => out.push_str(r#"<Reject reason="rejected"/>"#),
            }
        }
        out.push_str("</Response>");
        out
    }
}

fn render_prompt(out: &mut String, prompt: &Prompt) {
    match prompt {
        Prompt::Say { text, voice } => {
            let _ = write!(
                out,
                r#"<Say voice="{}" language="{}">{}</Say>"#,
                escape(&voice.voice),
                escape(&voice.language),
                escape(text)
            );
        }
        Prompt::PlayUrl(url) => {
            let _ = write!(out, "<Play>{}</Play>", escape(url));
        }
        Prompt::PlayDigits(digits) => {
            let _ = write!(out, r#"<Play digits="{}"/>"#, escape(digits));
        }
        Prompt::Pause { seconds } => {
            let _ = write!(out, r#"<Pause length="{seconds}"/>"#);
        }
    }
}

/// Escapes text for both element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all are dropped rather than sent to Twilio.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A finished TwiML document, ready to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document(String);

impl Document {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl IntoResponse for Document {
    fn into_response(self) -> HttpResponse {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice() -> Voice {
        Voice {
            voice: "alice".into(),
            language: "en-US".into(),
        }
    }

    #[test]
    fn escapes_text_and_attributes() {
        let document = Response::new()
            .say(&voice(), "Tom & Jerry <3 \"quotes\"")
            .prompt(Prompt::PlayUrl("https://x.test/a?b=1&c=2".into()))
            .finish();
        let xml = document.as_str();
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#));
        assert!(xml.contains("Tom &amp; Jerry &lt;3 &quot;quotes&quot;"));
        assert!(xml.contains("a?b=1&amp;c=2"));
        let parsed = roxmltree::Document::parse(xml).unwrap();
        let say = parsed
            .descendants()
            .find(|n| n.has_tag_name("Say"))
            .unwrap();
        assert_eq!(say.text(), Some("Tom & Jerry <3 \"quotes\""));
    }

    #[test]
    fn drops_characters_xml_forbids() {
        let xml = Response::new().say(&voice(), "a\u{1}b").finish();
        assert!(roxmltree::Document::parse(xml.as_str()).is_ok());
        assert!(xml.as_str().contains(">ab<"));
    }
}
