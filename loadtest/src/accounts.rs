//! The logged-in users: before the run, each account signs up (or, when it already exists, logs
//! in) through the site's HTML forms as a browser would — GET the form, which starts a session
//! and carries its CSRF token, then POST it back with that session's cookie — and keeps the
//! session cookie the site sets at log-in. During the run, its requests carry that cookie,
//! which is what makes the proxy pass them to an app server instead of its cache.
//!
//! For comments, an account reads one post page once while logged in and learns the comment
//! form: its action relative to the post's path, the hidden fields (the session's CSRF token)
//! and the text field's name. Each comment is then a single POST, like a person pressing
//! "Add comment" on the page they are reading.

use http::header::{COOKIE, SET_COOKIE};
use reqwest::Response;
use url::Url;

use crate::config::SiteConfig;
use crate::forms::{self, Form};

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    /// `name=value`, ready for a `Cookie` header.
    pub cookie: String,
    pub comment_form: Option<CommentForm>,
}

/// How to post a comment on any post, learnt from one post page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentForm {
    /// The form's action with the post's path replaced by `{post}` (or a fixed action when it
    /// did not start with the post's path).
    action: String,
    hidden: Vec<(String, String)>,
    text_field: String,
}

impl CommentForm {
    fn learn(form: &Form, post_path: &str) -> Option<Self> {
        let text_field = form
            .fields
            .iter()
            .find(|field| field.kind == "textarea")?
            .name
            .clone();
        let action = match form.action.strip_prefix(post_path) {
            Some(rest) => format!("{{post}}{rest}"),
            None if form.action.is_empty() => "{post}".to_owned(),
            None => form.action.clone(),
        };
        Some(CommentForm {
            action,
            hidden: form.hidden_fields().collect(),
            text_field,
        })
    }

    /// Where to POST a comment on the post at `post_path`.
    pub fn action_for(&self, post_path: &str) -> String {
        self.action.replace("{post}", post_path)
    }

    /// The form's fields with `text` as the comment.
    pub fn fields(&self, text: &str) -> Vec<(String, String)> {
        let mut fields = self.hidden.clone();
        fields.push((self.text_field.clone(), text.to_owned()));
        fields
    }
}

/// Why an account could not be used.
#[derive(Debug, thiserror::Error)]
#[error("account {username}: {reason}")]
pub struct AccountError {
    username: String,
    reason: String,
}

/// Signs up or logs in `count` accounts; `sample_post` (a path) is read by each to learn the
/// comment form. Accounts that fail are reported, the others are used.
pub async fn log_in_all(
    client: &reqwest::Client,
    target: &Url,
    site: &SiteConfig,
    count: usize,
    sample_post: &str,
) -> (Vec<Account>, Vec<AccountError>) {
    let mut accounts = Vec::new();
    let mut failures = Vec::new();
    for n in 1..=count {
        let username = format!("{}-{n}", site.account_prefix);
        match log_in(client, target, site, &username, sample_post).await {
            Ok(account) => accounts.push(account),
            Err(reason) => failures.push(AccountError { username, reason }),
        }
    }
    (accounts, failures)
}

async fn log_in(
    client: &reqwest::Client,
    target: &Url,
    site: &SiteConfig,
    username: &str,
    sample_post: &str,
) -> Result<Account, String> {
    let browser = Browser {
        client,
        target,
        cookie_name: &site.session_cookie,
    };
    let fill = |field: &forms::Field| {
        Some(match field.kind.as_str() {
            "password" => site.account_password.clone(),
            "email" => format!("{username}@loadtest.invalid"),
            _ => username.to_owned(),
        })
    };
    let signed_up = browser
        .submit_first_post_form(&site.signup_path, &fill)
        .await;
    let cookie = match signed_up {
        Ok(Some(cookie)) => cookie,
        // The account exists from an earlier run (or sign-up is closed): log in instead.
        Ok(None) | Err(_) => browser
            .submit_first_post_form(&site.login_path, &fill)
            .await?
            .ok_or_else(|| {
                format!(
                    "neither {} nor {} set a `{}` cookie (wrong password for an existing account?)",
                    site.signup_path, site.login_path, site.session_cookie
                )
            })?,
    };
    let post_page = browser.get_html(sample_post, Some(&cookie)).await?;
    let comment_form = forms::forms(&post_page.1)
        .iter()
        .filter(|form| form.method == "post")
        .find_map(|form| CommentForm::learn(form, sample_post));
    Ok(Account {
        username: username.to_owned(),
        cookie,
        comment_form,
    })
}

/// What a browser does with forms and one session cookie.
struct Browser<'a> {
    client: &'a reqwest::Client,
    target: &'a Url,
    cookie_name: &'a str,
}

impl Browser<'_> {
    fn url(&self, path: &str) -> Result<Url, String> {
        self.target
            .join(path)
            .map_err(|error| format!("{path} is not a path: {error}"))
    }

    /// GETs `path`; returns the session cookie it set (if any) and the page.
    async fn get_html(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> Result<(Option<String>, String), String> {
        let mut request = self.client.get(self.url(path)?);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("GET {path}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {path} answered {}", response.status()));
        }
        let cookie = self.session_cookie(&response);
        let page = response
            .text()
            .await
            .map_err(|error| format!("GET {path}: {error}"))?;
        Ok((cookie, page))
    }

    /// Opens the page at `path`, fills its first POST form and submits it with the page's
    /// session. Returns the session cookie the answer set, if the answer was a success or a
    /// redirect that set one.
    async fn submit_first_post_form(
        &self,
        path: &str,
        fill: &impl Fn(&forms::Field) -> Option<String>,
    ) -> Result<Option<String>, String> {
        let (form_cookie, page) = self.get_html(path, None).await?;
        let form = forms::forms(&page)
            .into_iter()
            .find(|form| form.method == "post")
            .ok_or_else(|| format!("{path} has no POST form"))?;
        let action = if form.action.is_empty() {
            path
        } else {
            &form.action
        };
        let mut request = self.client.post(self.url(action)?).form(&form.filled(fill));
        if let Some(cookie) = &form_cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("POST {action}: {error}"))?;
        let status = response.status();
        let new_cookie = self.session_cookie(&response);
        // A form shown again with problems may repeat the anonymous session's cookie; only a
        // new session means the site logged us in.
        Ok(new_cookie.filter(|cookie| {
            (status.is_success() || status.is_redirection()) && Some(cookie) != form_cookie.as_ref()
        }))
    }

    /// The session cookie set by `response`, as `name=value`.
    fn session_cookie(&self, response: &Response) -> Option<String> {
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|set_cookie| set_cookie.split(';').next())
            .map(str::trim)
            .find(|pair| {
                pair.split_once('=')
                    .is_some_and(|(name, value)| name == self.cookie_name && !value.is_empty())
            })
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_form_under_the_post_path_works_for_every_post() {
        let form = &forms::forms(
            r#"<form method="post" action="/posts/a/comments">
                 <input type="hidden" name="csrf_token" value="t"><textarea name="body"></textarea>
               </form>"#,
        )[0];
        let learnt = CommentForm::learn(form, "/posts/a").unwrap();
        assert_eq!(learnt.action_for("/posts/b"), "/posts/b/comments");
        assert_eq!(
            learnt.fields("hi"),
            [
                ("csrf_token".to_owned(), "t".to_owned()),
                ("body".to_owned(), "hi".to_owned())
            ]
        );
    }

    #[test]
    fn a_form_without_a_text_area_is_not_a_comment_form() {
        let form = &forms::forms(
            r#"<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="t"></form>"#,
        )[0];
        assert_eq!(CommentForm::learn(form, "/posts/a"), None);
    }
}
