//! The blog as a visitor sees it through the proxy: pages, the headers each tier adds, and the
//! sign-up and comment forms.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use regex::Regex;

/// The proxy's public address, e.g. `http://127.0.0.1:18080`.
#[derive(Clone)]
pub struct Site {
    pub base: String,
    client: reqwest::Client,
}

/// What one response said about the tiers behind it.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub x_cache: Option<String>,
    pub served_by: Option<String>,
    /// How many database queries the app made for this response (from `Server-Timing`).
    pub db_queries: Option<u32>,
    /// The app's cache-pool hits and misses for this response (from `Server-Timing`).
    pub pool_lookups: Option<(u32, u32)>,
    pub body: String,
}

/// The app's session cookie; the proxy bypasses its cache for requests that carry it.
pub const SESSION_COOKIE: &str = "leanstack_session";

impl Site {
    pub fn new(base: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client builds");
        Self { base, client }
    }

    pub async fn get(&self, path: &str) -> Result<Page> {
        self.get_with(path, None).await
    }

    /// A GET carrying a session cookie, so the proxy passes it to an app server.
    pub async fn get_bypassing_cache(&self, path: &str) -> Result<Page> {
        self.get_with(path, Some(&format!("{SESSION_COOKIE}=anonymous-probe")))
            .await
    }

    async fn get_with(&self, path: &str, cookie: Option<&str>) -> Result<Page> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        read_page(response).await
    }

    /// Slugs of the posts linked from the front page.
    pub async fn post_slugs(&self) -> Result<Vec<String>> {
        let front = self.get("/").await?;
        let link = Regex::new(r#"href="/posts/([a-z0-9-]+)""#).expect("valid regex");
        let mut slugs: Vec<String> = link
            .captures_iter(&front.body)
            .map(|c| c[1].to_owned())
            .filter(|slug| slug != "new")
            .collect();
        slugs.dedup();
        if slugs.is_empty() {
            bail!("the front page links no posts (status {})", front.status);
        }
        Ok(slugs)
    }

    /// Signs up a new user and returns the session to act as them.
    pub async fn sign_up(&self, username: &str) -> Result<Session> {
        let mut session = Session::open(self, "/signup").await?;
        let response = session
            .post_form(
                "/signup",
                &[
                    ("username", username),
                    ("display_name", username),
                    ("password", "correct horse battery"),
                ],
            )
            .await?;
        if !response.status().is_redirection() {
            bail!("sign-up answered {}", response.status());
        }
        // Logging in starts a new session (so a session fixed before login is worthless).
        if let Some(cookie) = session_cookie(&response) {
            session.cookie = cookie;
        }
        session.refresh_csrf("/").await
    }
}

async fn read_page(response: reqwest::Response) -> Result<Page> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let x_cache = header("x-cache");
    let served_by = header("x-served-by");
    let timing = header("server-timing").unwrap_or_default();
    let db_queries = db_queries(&timing);
    let pool_lookups = pool_lookups(&timing);
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok(Page {
        status,
        x_cache,
        served_by,
        db_queries,
        pool_lookups,
        body,
    })
}

/// The query count in `db;dur=…;desc="N queries"`.
pub fn db_queries(server_timing: &str) -> Option<u32> {
    let pattern = Regex::new(r#"db;[^,]*desc="(\d+) quer"#).expect("valid regex");
    pattern
        .captures(server_timing)
        .and_then(|c| c[1].parse().ok())
}

/// The hits and misses in `cache;dur=…;desc="H hits, M misses"`.
pub fn pool_lookups(server_timing: &str) -> Option<(u32, u32)> {
    let pattern = Regex::new(r#"cache;[^,]*desc="(\d+) hits?, (\d+) miss"#).expect("valid regex");
    let found = pattern.captures(server_timing)?;
    Some((found[1].parse().ok()?, found[2].parse().ok()?))
}

/// A logged-in (or about to log in) visitor: the session cookie and the form's CSRF token.
pub struct Session {
    site: Site,
    cookie: String,
    csrf: String,
}

impl Session {
    /// Opens a form page, which starts a session and gives the form its CSRF token.
    async fn open(site: &Site, form_path: &str) -> Result<Self> {
        let response = site
            .client
            .get(format!("{}{form_path}", site.base))
            .send()
            .await?;
        let cookie = session_cookie(&response).context("the form set no session cookie")?;
        let body = response.text().await?;
        let csrf = csrf_token(&body).context("the form carries no csrf_token")?;
        Ok(Self {
            site: site.clone(),
            cookie,
            csrf,
        })
    }

    async fn refresh_csrf(mut self, path: &str) -> Result<Self> {
        let page = self.site.get_with(path, Some(&self.cookie)).await?;
        if let Some(csrf) = csrf_token(&page.body) {
            self.csrf = csrf;
        }
        Ok(self)
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<reqwest::Response> {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        Ok(self
            .site
            .client
            .post(format!("{}{path}", self.site.base))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await?)
    }

    /// Posts a comment; Ok once the app acknowledged it (a redirect back to the post).
    pub async fn comment(&self, slug: &str, text: &str) -> Result<()> {
        let response = self
            .post_form(&format!("/posts/{slug}/comments"), &[("body", text)])
            .await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !response.status().is_redirection() || !location.starts_with("/posts/") {
            bail!("comment answered {} to {location:?}", response.status());
        }
        Ok(())
    }
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(SESSION_COOKIE))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

fn csrf_token(body: &str) -> Option<String> {
    let pattern = Regex::new(r#"name="csrf_token" value="([^"]+)""#).expect("valid regex");
    pattern.captures(body).map(|c| c[1].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_query_count_from_server_timing() {
        let header =
            r#"cache;dur=0.2;desc="1 hit, 0 misses", db;dur=3.1;desc="2 queries", render;dur=0.4"#;
        assert_eq!(db_queries(header), Some(2));
        assert_eq!(db_queries(r#"db;dur=0;desc="1 query""#), Some(1));
        assert_eq!(db_queries("render;dur=1"), None);
        assert_eq!(pool_lookups(header), Some((1, 0)));
        assert_eq!(
            pool_lookups(r#"cache;dur=1;desc="0 hits, 3 misses""#),
            Some((0, 3))
        );
    }
}
