//! Comments on posts: plain text (templates escape it), shown oldest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Db;

/// Longest accepted comment, in characters.
pub const MAX_CHARS: usize = 5000;

/// A comment as its post's page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Comment {
    pub id: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub author_username: String,
    pub author_name: String,
}

/// Checks a comment's text; `Err` says what is wrong with it.
pub fn validate(body: &str) -> Result<&str, String> {
    let body = body.trim();
    if body.is_empty() {
        Err("The comment is empty.".to_owned())
    } else if body.chars().count() > MAX_CHARS {
        Err(format!(
            "The comment is longer than {MAX_CHARS} characters."
        ))
    } else {
        Ok(body)
    }
}

/// Every comment on the post, oldest first.
pub async fn for_post(db: &Db, post_id: i64) -> Result<Vec<Comment>, sqlx::Error> {
    db.run(
        sqlx::query_as(
            "SELECT c.id, c.body, c.created_at, \
                    u.username AS author_username, u.display_name AS author_name \
             FROM comments c JOIN users u ON u.id = c.author_id \
             WHERE c.post_id = $1 ORDER BY c.created_at, c.id",
        )
        .bind(post_id)
        .fetch_all(db.pool()),
    )
    .await
}

/// Adds a comment (already validated) and returns its id.
pub async fn create(db: &Db, post_id: i64, author_id: i64, body: &str) -> Result<i64, sqlx::Error> {
    db.run(
        sqlx::query_scalar(
            "INSERT INTO comments (post_id, author_id, body) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(post_id)
        .bind(author_id)
        .bind(body)
        .fetch_one(db.pool()),
    )
    .await
}
