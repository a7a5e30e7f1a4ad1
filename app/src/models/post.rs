//! Posts: the listings (front page, tag, author, search), one post, and writing a post.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Db, PER_PAGE, limit_offset, off_the_async_threads};
use crate::markdown;

/// A post as a listing shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PostSummary {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub excerpt: String,
    pub published_at: DateTime<Utc>,
    pub author_id: i64,
    pub author_username: String,
    pub author_name: String,
    pub comment_count: i64,
    pub tags: Vec<String>,
}

/// A post as its own page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Post {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub body_html: String,
    pub published_at: DateTime<Utc>,
    pub author_id: i64,
    pub author_username: String,
    pub author_name: String,
    pub tags: Vec<String>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostList {
    pub posts: Vec<PostSummary>,
    /// 1-based.
    pub page: u32,
    pub has_next: bool,
}

/// Which posts a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every post: the front page.
    Front,
    /// Posts carrying this tag.
    Tag(String),
    /// Posts written by the user with this username.
    Author(String),
}

/// The columns of a [`PostSummary`]. Counting comments and gathering tags per row makes the
/// listings the expensive queries of the site — which is what the cache is for.
macro_rules! summary_select {
    () => {
        "SELECT p.id, p.slug, p.title, p.excerpt, p.published_at, p.author_id, \
                u.username AS author_username, u.display_name AS author_name, \
                (SELECT count(*) FROM comments c WHERE c.post_id = p.id) AS comment_count, \
                ARRAY(SELECT t.name FROM post_tags pt JOIN tags t ON t.id = pt.tag_id \
                      WHERE pt.post_id = p.id ORDER BY t.name) AS tags \
         FROM posts p JOIN users u ON u.id = p.author_id "
    };
}

/// The `WHERE` condition of each listing; `$3` is the tag or username.
macro_rules! listing_filter {
    (front) => {
        "TRUE"
    };
    (tag) => {
        "p.id IN (SELECT pt.post_id FROM post_tags pt JOIN tags t ON t.id = pt.tag_id \
                  WHERE t.name = $3)"
    };
    (author) => {
        "u.username = $3"
    };
}

macro_rules! listing_sql {
    ($which:tt) => {
        concat!(
            summary_select!(),
            "WHERE ",
            listing_filter!($which),
            " ORDER BY p.published_at DESC, p.id DESC LIMIT $1 OFFSET $2"
        )
    };
}

/// How many posts of the listing come before the post published at `$1` with id `$2`.
macro_rules! position_sql {
    ($which:tt) => {
        concat!(
            "SELECT count(*) FROM posts p JOIN users u ON u.id = p.author_id WHERE ",
            listing_filter!($which),
            " AND (p.published_at, p.id) > ($1, $2)"
        )
    };
}

impl Listing {
    fn sql(&self) -> (&'static str, &'static str, Option<&str>) {
        match self {
            Listing::Front => (listing_sql!(front), position_sql!(front), None),
            Listing::Tag(tag) => (listing_sql!(tag), position_sql!(tag), Some(tag)),
            Listing::Author(username) => {
                (listing_sql!(author), position_sql!(author), Some(username))
            }
        }
    }
}

/// Cuts the extra row [`limit_offset`] fetched into `has_next`.
fn into_list(mut posts: Vec<PostSummary>, page: u32) -> PostList {
    let has_next = posts.len() > PER_PAGE as usize;
    posts.truncate(PER_PAGE as usize);
    PostList {
        posts,
        page,
        has_next,
    }
}

/// Page `page` (1-based) of `listing`.
pub async fn list(db: &Db, listing: &Listing, page: u32) -> Result<PostList, sqlx::Error> {
    let (sql, _, parameter) = listing.sql();
    let (limit, offset) = limit_offset(page);
    let mut query = sqlx::query_as(sql).bind(limit).bind(offset);
    if let Some(parameter) = parameter {
        query = query.bind(parameter);
    }
    let posts = db.run(query.fetch_all(db.pool())).await?;
    Ok(into_list(posts, page))
}

/// Which page of `listing` shows `post` (to invalidate just that page when its comment count
/// changes).
pub async fn page_of(db: &Db, listing: &Listing, post: &Post) -> Result<u32, sqlx::Error> {
    let (_, sql, parameter) = listing.sql();
    let mut query = sqlx::query_scalar(sql)
        .bind(post.published_at)
        .bind(post.id);
    if let Some(parameter) = parameter {
        query = query.bind(parameter);
    }
    let before: i64 = db.run(query.fetch_one(db.pool())).await?;
    Ok(u32::try_from(before / i64::from(PER_PAGE) + 1).unwrap_or(u32::MAX))
}

/// How many pages `listing` has (at least 1).
pub async fn page_count(db: &Db, listing: &Listing) -> Result<u32, sqlx::Error> {
    let total: i64 = match listing {
        Listing::Front => {
            db.run(sqlx::query_scalar("SELECT count(*) FROM posts").fetch_one(db.pool()))
                .await?
        }
        Listing::Tag(tag) => {
            db.run(
                sqlx::query_scalar(
                    "SELECT count(*) FROM post_tags pt JOIN tags t ON t.id = pt.tag_id \
                     WHERE t.name = $1",
                )
                .bind(tag)
                .fetch_one(db.pool()),
            )
            .await?
        }
        Listing::Author(username) => {
            db.run(
                sqlx::query_scalar(
                    "SELECT count(*) FROM posts p JOIN users u ON u.id = p.author_id \
                     WHERE u.username = $1",
                )
                .bind(username)
                .fetch_one(db.pool()),
            )
            .await?
        }
    };
    let pages = (total + i64::from(PER_PAGE) - 1) / i64::from(PER_PAGE);
    Ok(u32::try_from(pages.max(1)).unwrap_or(u32::MAX))
}

/// Page `page` of the posts matching a full-text `query` (web-search syntax: words, "phrases",
/// -exclusions), best match first.
pub async fn search(db: &Db, query: &str, page: u32) -> Result<PostList, sqlx::Error> {
    const SQL: &str = concat!(
        summary_select!(),
        ", websearch_to_tsquery('english', $3) AS q \
         WHERE p.search @@ q \
         ORDER BY ts_rank(p.search, q) DESC, p.published_at DESC, p.id DESC \
         LIMIT $1 OFFSET $2"
    );
    let (limit, offset) = limit_offset(page);
    let posts = db
        .run(
            sqlx::query_as(SQL)
                .bind(limit)
                .bind(offset)
                .bind(query)
                .fetch_all(db.pool()),
        )
        .await?;
    Ok(into_list(posts, page))
}

/// The post with this slug.
pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<Post>, sqlx::Error> {
    const SQL: &str = "SELECT p.id, p.slug, p.title, p.body_html, p.published_at, p.author_id, \
                u.username AS author_username, u.display_name AS author_name, \
                ARRAY(SELECT t.name FROM post_tags pt JOIN tags t ON t.id = pt.tag_id \
                      WHERE pt.post_id = p.id ORDER BY t.name) AS tags \
         FROM posts p JOIN users u ON u.id = p.author_id WHERE p.slug = $1";
    db.run(sqlx::query_as(SQL).bind(slug).fetch_optional(db.pool()))
        .await
}

/// A post about to be written, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    pub title: String,
    pub body_markdown: String,
    pub tags: Vec<String>,
}

/// Longest accepted post body (Markdown), in bytes.
pub const MAX_MARKDOWN_BYTES: usize = 100_000;

impl NewPost {
    /// Validates what a form or API client sent; `Err` lists every problem.
    pub fn parse(title: &str, body: &str, tags: &str) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let title = title.trim();
        if title.is_empty() {
            problems.push("The title is empty.".to_owned());
        } else if title.chars().count() > 200 {
            problems.push("The title is longer than 200 characters.".to_owned());
        } else if slug_of(title).is_empty() {
            problems.push("The title needs at least one letter or digit.".to_owned());
        }
        if body.trim().is_empty() {
            problems.push("The body is empty.".to_owned());
        } else if body.len() > MAX_MARKDOWN_BYTES {
            problems.push(format!(
                "The body is longer than {MAX_MARKDOWN_BYTES} bytes."
            ));
        }
        let tags = super::tag::parse_list(tags).unwrap_or_else(|problem| {
            problems.push(format!("Tags: {problem}."));
            Vec::new()
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            title: title.to_owned(),
            body_markdown: body.to_owned(),
            tags,
        })
    }
}

/// "Hello, World!" → "hello-world" (ASCII letters and digits only, at most 80 bytes).
pub fn slug_of(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 80 {
            break;
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// Writes `new` by `author_id`, with its tags, in one transaction. The slug comes from the title,
/// with `-2`, `-3`, … appended when it is taken.
pub async fn create(db: &Db, author_id: i64, new: &NewPost) -> Result<Post, sqlx::Error> {
    let body = new.body_markdown.clone();
    let rendered = off_the_async_threads(move || markdown::render(&body)).await?;
    let base = slug_of(&new.title);
    let mut tx = db.run(db.pool().begin()).await?;
    let mut inserted: Option<(i64, String)> = None;
    // `/posts/new` is the form, so a post cannot be called plain "new".
    let first_attempt = if base == "new" { 2 } else { 1 };
    for attempt in first_attempt..=50 {
        let slug = if attempt == 1 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        inserted = db
            .run(
                sqlx::query_as(
                    "INSERT INTO posts (slug, title, body_markdown, body_html, excerpt, author_id) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (slug) DO NOTHING \
                     RETURNING id, slug",
                )
                .bind(&slug)
                .bind(&new.title)
                .bind(&new.body_markdown)
                .bind(&rendered.html)
                .bind(&rendered.excerpt)
                .bind(author_id)
                .fetch_optional(&mut *tx),
            )
            .await?;
        if inserted.is_some() {
            break;
        }
    }
    let (post_id, slug) = inserted.ok_or_else(|| {
        sqlx::Error::Protocol(format!("no free slug for {base:?} after 50 attempts"))
    })?;
    if !new.tags.is_empty() {
        db.run(
            sqlx::query(
                "INSERT INTO tags (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&new.tags)
            .execute(&mut *tx),
        )
        .await?;
        db.run(
            sqlx::query(
                "INSERT INTO post_tags (post_id, tag_id) \
                 SELECT $1, id FROM tags WHERE name = ANY($2)",
            )
            .bind(post_id)
            .bind(&new.tags)
            .execute(&mut *tx),
        )
        .await?;
    }
    db.run(tx.commit()).await?;
    by_slug(db, &slug).await?.ok_or(sqlx::Error::RowNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug_of("Hello, World!"), "hello-world");
        assert_eq!(
            slug_of("  Rust & Postgres: 2 ways "),
            "rust-postgres-2-ways"
        );
        assert_eq!(slug_of("¡¿?"), "");
        assert!(slug_of(&"a".repeat(300)).len() <= 80);
    }

    #[test]
    fn a_new_post_lists_every_problem() {
        let problems = NewPost::parse(" ", "", "c++").unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let post = NewPost::parse(" Title ", "Body", "Rust web").unwrap();
        assert_eq!(post.title, "Title");
        assert_eq!(post.tags, ["rust", "web"]);
    }
}
