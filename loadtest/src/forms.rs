//! Just enough HTML form reading to act like a browser on the site's own forms: each form's
//! action, and its fields with their types and values — notably the hidden CSRF token, which is
//! sent back whatever the site calls it.
//!
//! The site's pages are server-rendered, well-formed HTML, so a few patterns over tags suffice;
//! a full HTML parser would add a large dependency for no gain here.

use std::sync::LazyLock;

use regex::Regex;

/// A `<form>` on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// The `action` attribute, entity-decoded (empty when absent: the page's own URL).
    pub action: String,
    /// `get` or `post`, lowercased.
    pub method: String,
    pub fields: Vec<Field>,
}

/// An `<input>` or `<textarea>` with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The input's `type` lowercased (`text` when absent), or `textarea`.
    pub kind: String,
    pub value: String,
}

static FORM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<form\b([^>]*)>(.*?)</form\s*>").expect("valid pattern"));
static FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<(input|textarea)\b([^>]*)>").expect("valid pattern"));
static ATTRIBUTE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)([A-Za-z_:][-A-Za-z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"#)
        .expect("valid pattern")
});

/// Every form on `html`, in page order.
pub fn forms(html: &str) -> Vec<Form> {
    FORM.captures_iter(html)
        .map(|form| {
            let attributes = &form[1];
            Form {
                action: attribute(attributes, "action").unwrap_or_default(),
                method: attribute(attributes, "method")
                    .unwrap_or_else(|| "get".into())
                    .to_ascii_lowercase(),
                fields: FIELD
                    .captures_iter(&form[2])
                    .filter_map(|field| {
                        let attributes = &field[2];
                        let kind = if field[1].eq_ignore_ascii_case("textarea") {
                            "textarea".to_owned()
                        } else {
                            attribute(attributes, "type")
                                .unwrap_or_else(|| "text".into())
                                .to_ascii_lowercase()
                        };
                        Some(Field {
                            name: attribute(attributes, "name")?,
                            kind,
                            value: attribute(attributes, "value").unwrap_or_default(),
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

impl Form {
    /// The values a browser would send back untouched: the hidden fields.
    pub fn hidden_fields(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.fields
            .iter()
            .filter(|field| field.kind == "hidden")
            .map(|field| (field.name.clone(), field.value.clone()))
    }

    /// The hidden fields plus a value, chosen by `fill`, for every field a person would type in
    /// (text, email, password, textarea…); `fill` returning `None` leaves a field out.
    pub fn filled(&self, fill: impl Fn(&Field) -> Option<String>) -> Vec<(String, String)> {
        let typed = self.fields.iter().filter(|field| {
            !matches!(
                field.kind.as_str(),
                "hidden" | "submit" | "button" | "reset" | "image" | "file" | "checkbox" | "radio"
            )
        });
        self.hidden_fields()
            .chain(typed.filter_map(|field| Some((field.name.clone(), fill(field)?))))
            .collect()
    }
}

fn attribute(attributes: &str, wanted: &str) -> Option<String> {
    ATTRIBUTE.captures_iter(attributes).find_map(|attribute| {
        if !attribute[1].eq_ignore_ascii_case(wanted) {
            return None;
        }
        let value = attribute
            .get(2)
            .or(attribute.get(3))
            .or(attribute.get(4))
            .map_or("", |value| value.as_str());
        Some(decode_entities(value))
    })
}

/// Undoes the escaping a template engine applies to attribute values.
fn decode_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#x2F;", "/"),
        ("&#x2f;", "/"),
        ("&#47;", "/"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(value.to_owned(), |decoded, (entity, text)| {
        decoded.replace(entity, text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"
        <form class="search" action="/search"><input type="search" name="q"></form>
        <FORM method="POST" action="/posts/a&amp;b/comments">
          <input type="hidden" name="csrf_token" value="tok&#x2F;en">
          <label>Comment <textarea name="body" required></textarea></label>
          <input type='text' name=author_note>
          <button type="submit">Send</button>
        </FORM>"#;

    #[test]
    fn reads_actions_methods_and_fields() {
        let found = forms(PAGE);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].method, "get");
        assert_eq!(found[1].action, "/posts/a&b/comments");
        assert_eq!(found[1].method, "post");
        let names: Vec<_> = found[1]
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("csrf_token", "hidden"),
                ("body", "textarea"),
                ("author_note", "text")
            ]
        );
    }

    #[test]
    fn filling_keeps_hidden_values_and_types_the_rest() {
        let form = &forms(PAGE)[1];
        let filled = form.filled(|field| (field.kind == "textarea").then(|| "hello".to_owned()));
        assert_eq!(
            filled,
            [
                ("csrf_token".to_owned(), "tok/en".to_owned()),
                ("body".to_owned(), "hello".to_owned())
            ]
        );
    }
}
