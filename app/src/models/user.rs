//! Users: sign-up, password check (argon2id), and the public author profile.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use super::{Db, off_the_async_threads};

/// Someone with an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// Authors may write posts; everyone logged in may comment.
    pub is_author: bool,
}

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A sign-up, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
}

impl NewUser {
    /// Validates a sign-up form; `Err` lists every problem.
    pub fn parse(username: &str, display_name: &str, password: &str) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let username = username.trim().to_lowercase();
        if !is_valid_username(&username) {
            problems.push("The username must be 3 to 32 of a–z, 0–9, “_” and “-”.".to_owned());
        }
        let display_name = display_name.trim();
        let display_name = if display_name.is_empty() {
            username.clone()
        } else {
            display_name.to_owned()
        };
        if display_name.chars().count() > 64 {
            problems.push("The display name is longer than 64 characters.".to_owned());
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            problems.push(format!(
                "The password needs at least {MIN_PASSWORD_CHARS} characters."
            ));
        } else if password.len() > 1024 {
            problems.push("The password is longer than 1024 bytes.".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            username,
            display_name,
            password: password.to_owned(),
        })
    }
}

fn is_valid_username(username: &str) -> bool {
    (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// An argon2id hash of `password` with a fresh random salt, in PHC string form.
pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Creates the account; `Ok(None)` when the username is taken.
pub async fn create(db: &Db, new: &NewUser) -> Result<Option<User>, sqlx::Error> {
    let password = new.password.clone();
    let hash = off_the_async_threads(move || hash_password(&password)).await?;
    db.run(
        sqlx::query_as(
            "INSERT INTO users (username, display_name, password_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO NOTHING \
             RETURNING id, username, display_name, is_author",
        )
        .bind(&new.username)
        .bind(&new.display_name)
        .bind(hash)
        .fetch_optional(db.pool()),
    )
    .await
}

/// The user whose username and password these are.
pub async fn authenticate(
    db: &Db,
    username: &str,
    password: &str,
) -> Result<Option<User>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let row: Option<Row> = db
        .run(
            sqlx::query_as(
                "SELECT id, username, display_name, is_author, password_hash \
                 FROM users WHERE username = $1",
            )
            .bind(username.trim().to_lowercase())
            .fetch_optional(db.pool()),
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let password = password.to_owned();
    // argon2 is deliberately slow: it runs off the async threads, and a panic there is an error
    // rather than a silent "wrong password".
    let matches =
        off_the_async_threads(move || password_matches(&password, &row.password_hash)).await?;
    Ok(matches.then_some(row.user))
}

/// The user with this username.
pub async fn by_username(db: &Db, username: &str) -> Result<Option<User>, sqlx::Error> {
    db.run(
        sqlx::query_as(
            "SELECT id, username, display_name, is_author FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(db.pool()),
    )
    .await
}

/// Lets the user write posts (`app make-author`).
pub async fn make_author(db: &Db, username: &str) -> Result<bool, sqlx::Error> {
    let updated = db
        .run(
            sqlx::query("UPDATE users SET is_author = TRUE WHERE username = $1")
                .bind(username)
                .execute(db.pool()),
        )
        .await?;
    Ok(updated.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches("correct horse", &hash));
        assert!(!password_matches("wrong horse", &hash));
        assert!(!password_matches("correct horse", "not a hash"));
    }

    #[test]
    fn sign_up_validation() {
        let user = NewUser::parse(" Alice ", "", "longenough").unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.display_name, "alice");
        let problems = NewUser::parse("a!", "x", "short").unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
