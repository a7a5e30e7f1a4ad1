//! The views: one askama template struct per page. Templates live in `app/templates/` and
//! extend `base.html`; askama escapes every value except post bodies, which are sanitised HTML
//! made at write time (see [`crate::markdown`]).

use askama::Template;
use axum::http::StatusCode;

use crate::assets;
use crate::models::comment::Comment;
use crate::models::post::{Post, PostList};
use crate::models::user::User;
use crate::timing;

/// Renders a page, counting the time as `render` in `Server-Timing`.
pub fn render(page: &impl Template) -> Result<String, askama::Error> {
    timing::render(|| page.render())
}

/// What `base.html` needs: who is looking, and the assets' content-hashed URLs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The logged-in user, if any.
    pub viewer: Option<User>,
    /// The session's CSRF token, for the forms on the page (log-out, comment); empty when there
    /// is no session.
    pub csrf_token: String,
    pub stylesheet: &'static str,
    pub favicon: &'static str,
}

impl Layout {
    /// The layout for a visitor without a session.
    pub fn anonymous() -> Self {
        Self::new(None, String::new())
    }

    pub fn new(viewer: Option<User>, csrf_token: String) -> Self {
        Self {
            viewer,
            csrf_token,
            stylesheet: assets::STYLESHEET.url(),
            favicon: assets::FAVICON.url(),
        }
    }
}

/// Links to the previous and next page of a listing.
#[derive(Debug, Clone)]
pub struct Pager {
    pub previous: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `base` is the listing's URL up to the page number, such as `/tags/rust?page=`.
    pub fn new(base: &str, list: &PostList) -> Self {
        Self {
            previous: (list.page > 1).then(|| format!("{base}{}", list.page - 1)),
            next: list.has_next.then(|| format!("{base}{}", list.page + 1)),
        }
    }
}

/// `/`: the latest posts.
#[derive(Debug, Template)]
#[template(path = "front.html")]
pub struct FrontPage {
    pub layout: Layout,
    pub list: PostList,
    pub pager: Pager,
}

/// `/tags/{tag}`.
#[derive(Debug, Template)]
#[template(path = "tag.html")]
pub struct TagPage {
    pub layout: Layout,
    pub tag: String,
    pub list: PostList,
    pub pager: Pager,
}

/// `/authors/{username}`.
#[derive(Debug, Template)]
#[template(path = "author.html")]
pub struct AuthorPage {
    pub layout: Layout,
    pub author: User,
    pub list: PostList,
    pub pager: Pager,
}

/// `/search?q=…`.
#[derive(Debug, Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub layout: Layout,
    pub query: String,
    /// `None` before anything was searched for.
    pub list: Option<PostList>,
    pub pager: Pager,
}

/// `/posts/{slug}`: a post, its comments, and the comment form for logged-in users.
#[derive(Debug, Template)]
#[template(path = "post.html")]
pub struct PostPage {
    pub layout: Layout,
    pub post: Post,
    pub comments: Vec<Comment>,
    /// What was typed into a comment form that was refused, and why.
    pub comment_draft: String,
    pub comment_problems: Vec<String>,
}

/// `/posts/new`.
#[derive(Debug, Template)]
#[template(path = "new_post.html")]
pub struct NewPostPage {
    pub layout: Layout,
    pub title: String,
    pub body: String,
    pub tags: String,
    pub problems: Vec<String>,
}

/// `/login`.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub username: String,
    pub problems: Vec<String>,
}

/// `/signup`.
#[derive(Debug, Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub layout: Layout,
    pub username: String,
    pub display_name: String,
    pub problems: Vec<String>,
}

/// Any error: the status, its reason phrase and what to do about it.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, message: String) -> Self {
        Self {
            layout: Layout::anonymous(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message,
        }
    }
}
