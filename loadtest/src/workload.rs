//! The traffic mix: who makes the next request and what it asks for.
//!
//! Most visitors are anonymous readers — the traffic the proxy's cache is for: post pages picked
//! by Zipf popularity, the front page, and tag pages (tags by Zipf popularity too). A share of
//! requests come from logged-in users, whose session cookie makes the proxy pass them to an app
//! server; a small share of *their* requests post a comment, the write that invalidates caches.

use rand::Rng;
use serde::Serialize;

use crate::config::{MixConfig, SiteConfig};
use crate::discovery::Catalog;
use crate::zipf::Zipf;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    Front,
    Post,
    Tag,
    Comment,
}

impl PageKind {
    pub const ALL: [PageKind; 4] = [
        PageKind::Front,
        PageKind::Post,
        PageKind::Tag,
        PageKind::Comment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PageKind::Front => "front",
            PageKind::Post => "post",
            PageKind::Tag => "tag",
            PageKind::Comment => "comment",
        }
    }

    /// Reads of a page, as opposed to the comment write.
    pub fn is_page_read(self) -> bool {
        self != PageKind::Comment
    }
}

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visitor {
    Anonymous,
    /// Logged in as the account with this index.
    LoggedIn(usize),
}

/// One request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub visitor: Visitor,
    pub kind: PageKind,
    /// The path to read, or for a comment the path of the post commented on.
    pub path: String,
}

/// Draws requests in the configured proportions.
#[derive(Debug, Clone)]
pub struct Mix {
    config: MixConfig,
    accounts: usize,
    front_path: String,
    post_paths: Vec<String>,
    tag_paths: Vec<String>,
    post_popularity: Zipf,
    tag_popularity: Option<Zipf>,
}

impl Mix {
    /// A mix over the discovered `catalog`, with `accounts` logged-in accounts available.
    /// `None` when the catalog has no posts.
    pub fn new(
        config: &MixConfig,
        site: &SiteConfig,
        catalog: &Catalog,
        accounts: usize,
    ) -> Option<Self> {
        Some(Mix {
            config: config.clone(),
            accounts,
            front_path: site.front_path.clone(),
            post_paths: catalog
                .posts
                .iter()
                .map(|slug| fill(&site.post_path, "{slug}", slug))
                .collect(),
            tag_paths: catalog
                .tags
                .iter()
                .map(|tag| fill(&site.tag_path, "{tag}", tag))
                .collect(),
            post_popularity: Zipf::new(catalog.posts.len(), config.zipf_exponent)?,
            tag_popularity: Zipf::new(catalog.tags.len(), config.zipf_exponent),
        })
    }

    /// The next request.
    pub fn next(&self, rng: &mut impl Rng) -> Planned {
        let visitor = if self.accounts > 0 && rng.random_bool(self.config.logged_in_share) {
            Visitor::LoggedIn(rng.random_range(0..self.accounts))
        } else {
            Visitor::Anonymous
        };
        if matches!(visitor, Visitor::LoggedIn(_)) && rng.random_bool(self.config.comment_share) {
            return Planned {
                visitor,
                kind: PageKind::Comment,
                path: self.popular_post(rng),
            };
        }
        let pick = rng.random::<f64>();
        let (kind, path) = if pick < self.config.front_share {
            (PageKind::Front, self.front_path.clone())
        } else if let Some(tags) = &self.tag_popularity
            && pick < self.config.front_share + self.config.tag_share
        {
            (PageKind::Tag, self.tag_paths[tags.sample(rng)].clone())
        } else {
            (PageKind::Post, self.popular_post(rng))
        };
        Planned {
            visitor,
            kind,
            path,
        }
    }

    fn popular_post(&self, rng: &mut impl Rng) -> String {
        self.post_paths[self.post_popularity.sample(rng)].clone()
    }
}

/// `template` with `placeholder` replaced by `value` as one path segment.
pub fn fill(template: &str, placeholder: &str, value: &str) -> String {
    template.replace(placeholder, &path_segment(value))
}

/// `value` made safe as one path segment: everything but RFC 3986's unreserved characters is
/// percent-encoded.
fn path_segment(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("hello-world_2"), "hello-world_2");
        assert_eq!(path_segment("c++/é"), "c%2B%2B%2F%C3%A9");
    }
}
