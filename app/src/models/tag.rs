//! Tags: short lowercase labels on posts.

use super::Db;

/// At most this many tags on one post.
pub const MAX_TAGS_PER_POST: usize = 5;

/// Whether `name` is a well-formed tag: 1–32 of `a-z`, `0-9` and `-`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Splits "Rust, web  caching" into `["rust", "web", "caching"]` (lowercased, de-duplicated,
/// in order), or says which tag is malformed.
pub fn parse_list(input: &str) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = Vec::new();
    for name in input
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let name = name.to_lowercase();
        if !is_valid_name(&name) {
            return Err(format!(
                "“{name}” is not a valid tag: use up to 32 letters, digits and dashes"
            ));
        }
        if !tags.contains(&name) {
            tags.push(name);
        }
    }
    if tags.len() > MAX_TAGS_PER_POST {
        return Err(format!("at most {MAX_TAGS_PER_POST} tags, please"));
    }
    Ok(tags)
}

/// Whether a tag of that name exists.
pub async fn exists(db: &Db, name: &str) -> Result<bool, sqlx::Error> {
    db.run(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tags WHERE name = $1)")
            .bind(name)
            .fetch_one(db.pool()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_tag_list() {
        assert_eq!(
            parse_list("Rust, web  rust,caching").unwrap(),
            ["rust", "web", "caching"]
        );
        assert_eq!(parse_list("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejects_bad_tags() {
        assert!(parse_list("c++").is_err());
        assert!(parse_list("a b c d e f").is_err());
        assert!(parse_list(&"x".repeat(33)).is_err());
    }
}
