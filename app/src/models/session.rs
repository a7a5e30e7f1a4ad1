//! Sessions: a random token in the `leanstack_session` cookie, a row in `sessions` keyed by the
//! token's SHA-256 (a stolen database does not yield usable cookies).
//!
//! A session starts when someone opens a form — every form carries the session's CSRF token —
//! and gains a user at log-in, when it is replaced by a new one so that a token planted before
//! log-in (session fixation) is worth nothing after it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Db;
use super::user::User;

/// How long a logged-in session lasts.
pub const LOGGED_IN_LIFETIME: Duration = Duration::days(30);
/// How long a session that only holds a CSRF token lasts.
const ANONYMOUS_LIFETIME: Duration = Duration::days(1);

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who is logged in, if anyone.
    pub user: Option<User>,
    /// What every form of this session must send back.
    pub csrf_token: String,
}

/// A new random token: 256 bits, URL-safe base64.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn hash_of(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// What names the session in the cache: its token's hash, never the token itself.
pub fn cache_id(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(hash_of(token))
}

/// The session whose cookie token this is, if it exists and has not expired.
pub async fn load(db: &Db, token: &str) -> Result<Option<Session>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        csrf_token: String,
        id: Option<i64>,
        username: Option<String>,
        display_name: Option<String>,
        is_author: Option<bool>,
    }
    let row: Option<Row> = db
        .run(
            sqlx::query_as(
                "SELECT s.csrf_token, u.id, u.username, u.display_name, u.is_author \
                 FROM sessions s LEFT JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > now()",
            )
            .bind(hash_of(token))
            .fetch_optional(db.pool()),
        )
        .await?;
    Ok(row.map(|row| Session {
        user: match (row.id, row.username, row.display_name, row.is_author) {
            (Some(id), Some(username), Some(display_name), Some(is_author)) => Some(User {
                id,
                username,
                display_name,
                is_author,
            }),
            _ => None,
        },
        csrf_token: row.csrf_token,
    }))
}

/// Starts a session (for `user`, or anonymous) and returns its cookie token, its expiry and
/// the session.
pub async fn start(
    db: &Db,
    user: Option<User>,
) -> Result<(String, DateTime<Utc>, Session), sqlx::Error> {
    let token = random_token();
    let csrf_token = random_token();
    let lifetime = if user.is_some() {
        LOGGED_IN_LIFETIME
    } else {
        ANONYMOUS_LIFETIME
    };
    let expires_at = Utc::now() + lifetime;
    db.run(
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_of(&token))
        .bind(user.as_ref().map(|user| user.id))
        .bind(&csrf_token)
        .bind(expires_at)
        .execute(db.pool()),
    )
    .await?;
    Ok((token, expires_at, Session { user, csrf_token }))
}

/// Ends the session with this token (and, while at it, every expired one).
pub async fn end(db: &Db, token: &str) -> Result<(), sqlx::Error> {
    db.run(
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at < now()")
            .bind(hash_of(token))
            .execute(db.pool()),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(hash_of(&a).len(), 32);
    }
}
