//! Before the run: which posts and tags exist, read from the site's JSON list of posts.
//!
//! The reader is tolerant of the list's shape, so it works against other versions of the app
//! and other sites: a page may be a bare array of posts or an object holding them under
//! `posts`, `items` or `data`; a post needs a `slug`, and may list `tags` as strings or as
//! objects with a `slug` or `name`. Pages are read from `?page=1` until one is empty, says
//! `has_next: false`, adds nothing new, fails, or `--discover-pages` is reached.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use url::Url;

use crate::Error;

/// What the run can read: posts in the list's order, tags most used first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub posts: Vec<String>,
    pub tags: Vec<String>,
}

/// Reads up to `max_pages` pages of the list at `api` (a path on `target`).
pub async fn discover(
    client: &reqwest::Client,
    target: &Url,
    api: &str,
    max_pages: u32,
) -> Result<Catalog, Error> {
    let mut posts = Vec::new();
    let mut seen = HashSet::new();
    let mut tag_uses: HashMap<String, usize> = HashMap::new();
    for page in 1..=max_pages {
        let mut url = target.join(api).map_err(|error| Error::Discovery {
            url: api.to_owned(),
            reason: error.to_string(),
        })?;
        url.query_pairs_mut().append_pair("page", &page.to_string());
        let body = match fetch_json(client, &url).await {
            Ok(body) => body,
            // A list that answers its first page but not a later one (a 404 past the end)
            // has simply ended.
            Err(error) if page > 1 => {
                tracing::debug!(%error, "the posts list ended");
                break;
            }
            Err(error) => return Err(error),
        };
        let listed = ListPage::read(&body);
        let before = posts.len();
        for post in listed.posts {
            if seen.insert(post.slug.clone()) {
                for tag in post.tags {
                    *tag_uses.entry(tag).or_default() += 1;
                }
                posts.push(post.slug);
            }
        }
        if posts.len() == before || listed.has_next == Some(false) {
            break;
        }
    }
    if posts.is_empty() {
        return Err(Error::Discovery {
            url: target
                .join(api)
                .map_or_else(|_| api.to_owned(), String::from),
            reason: "it listed no posts (seed the site with `app seed`, or point --posts-api at \
                     a JSON list of posts with slugs)"
                .into(),
        });
    }
    let mut tags: Vec<(String, usize)> = tag_uses.into_iter().collect();
    tags.sort_by(|(a, a_uses), (b, b_uses)| b_uses.cmp(a_uses).then_with(|| a.cmp(b)));
    Ok(Catalog {
        posts,
        tags: tags.into_iter().map(|(tag, _)| tag).collect(),
    })
}

async fn fetch_json(client: &reqwest::Client, url: &Url) -> Result<Value, Error> {
    let failed = |reason: String| Error::Discovery {
        url: url.to_string(),
        reason,
    };
    let response = client
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("it answered {status}")));
    }
    response
        .json()
        .await
        .map_err(|error| failed(format!("its answer is not JSON: {error}")))
}

#[derive(Debug, PartialEq)]
struct ListedPost {
    slug: String,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct ListPage {
    posts: Vec<ListedPost>,
    has_next: Option<bool>,
}

impl ListPage {
    fn read(body: &Value) -> ListPage {
        let items = match body {
            Value::Array(items) => Some(items),
            Value::Object(fields) => ["posts", "items", "data"]
                .iter()
                .find_map(|key| fields.get(*key).and_then(Value::as_array)),
            _ => None,
        };
        ListPage {
            posts: items
                .into_iter()
                .flatten()
                .filter_map(ListedPost::read)
                .collect(),
            has_next: body.get("has_next").and_then(Value::as_bool),
        }
    }
}

impl ListedPost {
    fn read(item: &Value) -> Option<ListedPost> {
        let slug = item.get("slug")?.as_str()?.to_owned();
        let tags = item
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tag| match tag {
                Value::String(name) => Some(name.clone()),
                Value::Object(fields) => ["slug", "name"]
                    .iter()
                    .find_map(|key| fields.get(*key).and_then(Value::as_str))
                    .map(str::to_owned),
                _ => None,
            })
            .collect();
        Some(ListedPost { slug, tags })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_an_object_with_posts_and_string_tags() {
        let page = ListPage::read(&json!({
            "posts": [{"slug": "a", "tags": ["rust", "web"]}, {"title": "no slug"}],
            "page": 1,
            "has_next": false,
        }));
        assert_eq!(
            page,
            ListPage {
                posts: vec![ListedPost {
                    slug: "a".into(),
                    tags: vec!["rust".into(), "web".into()]
                }],
                has_next: Some(false),
            }
        );
    }

    #[test]
    fn reads_a_bare_array_with_tag_objects() {
        let page =
            ListPage::read(&json!([{"slug": "b", "tags": [{"slug": "db"}, {"name": "Go"}]}]));
        assert_eq!(page.posts[0].tags, vec!["db".to_owned(), "Go".to_owned()]);
        assert_eq!(page.has_next, None);
    }

    #[test]
    fn something_else_lists_nothing() {
        assert!(ListPage::read(&json!({"error": "nope"})).posts.is_empty());
        assert!(ListPage::read(&json!("text")).posts.is_empty());
    }
}
