//! The tag index behind purge-by-tag: which resources carried which `Surrogate-Key` tags, as
//! Fastly's surrogate keys and Varnish's xkey do.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use http::{HeaderMap, HeaderName};

/// The response header a backend lists an object's tags in, space-separated.
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// A purge request header: `1` marks the objects stale instead of removing them.
pub const SOFT_PURGE: HeaderName = HeaderName::from_static("soft-purge");
/// Fastly's name for [`SOFT_PURGE`], accepted so that tools written for Fastly work as is.
pub const FASTLY_SOFT_PURGE: HeaderName = HeaderName::from_static("fastly-soft-purge");

/// The tags a response or a purge request names.
pub fn tags(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = headers
        .get_all(&SURROGATE_KEY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// tag → primary keys of the resources stored with it.
#[derive(Debug, Default)]
pub struct TagIndex {
    keys: Mutex<HashMap<String, HashSet<String>>>,
}

impl TagIndex {
    pub fn add(&self, primary: &str, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let mut keys = self.keys.lock().expect("not poisoned");
        for tag in tags {
            keys.entry(tag.clone())
                .or_default()
                .insert(primary.to_owned());
        }
    }

    pub fn remove(&self, primary: &str, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let mut keys = self.keys.lock().expect("not poisoned");
        for tag in tags {
            if let Some(set) = keys.get_mut(tag) {
                set.remove(primary);
                if set.is_empty() {
                    keys.remove(tag);
                }
            }
        }
    }

    /// The primary keys tagged with any of `tags`.
    pub fn lookup(&self, tags: &[String]) -> HashSet<String> {
        let keys = self.keys.lock().expect("not poisoned");
        tags.iter()
            .filter_map(|tag| keys.get(tag))
            .flatten()
            .cloned()
            .collect()
    }
}
