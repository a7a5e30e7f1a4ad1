//! The memory-bounded object store.
//!
//! Objects live in shards (a mutex each, picked by the primary key's hash) so that concurrent
//! lookups rarely contend. Eviction is S3-FIFO (Yang et al., SOSP '23): new objects enter a small
//! FIFO; those hit again while there move to the main FIFO, the others leave and are remembered
//! in a ghost queue so that, if they come back soon, they go straight to main; main reinserts
//! objects that were hit since they were last examined. It is as good as LRU-family policies on
//! web traces while a hit costs only a counter bump, no list reordering.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use prometheus_client::metrics::counter::Counter;

use super::freshness::Freshness;
use super::key;
use super::purge::TagIndex;
use crate::headers;
use crate::metrics::CacheStatus;

/// A stored response.
#[derive(Debug)]
pub struct CachedObject {
    pub status: StatusCode,
    /// What an answer from the cache is copied from: the backend's end-to-end headers
    /// (hop-by-hop ones and Age removed), then Age, X-Cache and this proxy's Via, whose values
    /// each answer sets in place ([`CachedObject::answer_form`]). A copy of a map is exactly
    /// full, and adding those three fields to the copy grew it, reallocated and rehashed, on
    /// every hit: keeping them stored took 4% off a hit's instructions (callgrind).
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the response was received.
    pub stored_at: Instant,
    pub freshness: Freshness,
    pub vary: Vec<HeaderName>,
    pub tags: Vec<String>,
    /// When a soft purge marked it: from then on it is stale whatever its lifetime said, and
    /// its stale-if-error window counts from that moment.
    pub soft_purged: OnceLock<Instant>,
}

/// What a purge does to the objects it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeMode {
    /// Removes them.
    Hard,
    /// Keeps them but marks them stale (Fastly's soft purge, xkey's `softpurge`): the next
    /// request goes to the backend, which may answer 304 to the stored validators, and the old
    /// copy stands in only when the backend fails (stale-if-error), never for
    /// stale-while-revalidate.
    Soft,
}

/// What may be done with a stored object now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    Fresh,
    /// Stale, but within its grace: serve it and refresh in the background.
    StaleWhileRevalidate,
    /// Must be revalidated (or refetched) before use.
    Stale,
}

impl CachedObject {
    /// `backend`'s end-to-end headers in the form [`CachedObject::headers`] keeps them; an Age
    /// among them (the one a miss was answered with, a 304's) gives way to the slot.
    pub fn answer_form(mut backend: HeaderMap) -> HeaderMap {
        backend.insert(header::AGE, HeaderValue::from_static("0"));
        backend.insert(
            headers::X_CACHE,
            HeaderValue::from_static(CacheStatus::Hit.as_str()),
        );
        headers::append_via(&mut backend);
        backend
    }

    /// The backend's headers alone: the stored ones without what [`CachedObject::answer_form`]
    /// added.
    pub fn backend_headers(&self) -> HeaderMap {
        let mut backend = self.headers.clone();
        backend.remove(header::AGE);
        backend.remove(headers::X_CACHE);
        if let header::Entry::Occupied(via) = backend.entry(header::VIA) {
            let (name, values) = via.remove_entry_mult();
            let mut values: Vec<HeaderValue> = values.collect();
            // This proxy's, appended last.
            values.pop();
            for value in values {
                backend.append(&name, value);
            }
        }
        backend
    }

    /// current_age of RFC 9111 §4.2.3.
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness.initial_age + now.saturating_duration_since(self.stored_at)
    }

    pub fn usable(&self, now: Instant) -> Usable {
        let age = self.age(now);
        let f = &self.freshness;
        if f.revalidate_always || self.soft_purged.get().is_some() {
            Usable::Stale
        } else if age < f.lifetime {
            Usable::Fresh
        } else if age < f.lifetime + f.grace {
            Usable::StaleWhileRevalidate
        } else {
            Usable::Stale
        }
    }

    /// Whether it may stand in for a failed backend (stale-if-error).
    pub fn usable_on_error(&self, now: Instant) -> bool {
        let expired_at_age = match self.soft_purged.get() {
            Some(&purged) => self.freshness.lifetime.min(self.age(purged)),
            None => self.freshness.lifetime,
        };
        self.age(now) < expired_at_age + self.freshness.stale_if_error
    }

    /// What it costs in memory: body, headers and a fixed allowance for bookkeeping.
    fn size(&self, primary: &str) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 16)
            .sum();
        (self.body.len() + headers + primary.len() + 256) as u64
    }
}

/// Store-wide numbers for /status and /metrics.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StoreStats {
    pub objects: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    max_memory: u64,
    tags: TagIndex,
    evictions: Counter,
}

/// All variants of one resource.
#[derive(Debug)]
struct Resource {
    vary: Vec<HeaderName>,
    variants: Vec<Variant>,
}

#[derive(Debug)]
struct Variant {
    key: String,
    object: Arc<CachedObject>,
    size: u64,
    /// Hits since the eviction scan last looked at it, capped at 3.
    freq: u8,
    in_main: bool,
    /// Tells a queue entry for this object from one left behind by an object it replaced.
    generation: u64,
}

#[derive(Debug)]
struct Shard {
    budget: u64,
    used: u64,
    small_used: u64,
    resources: HashMap<String, Resource>,
    small: VecDeque<(String, u64)>,
    main: VecDeque<(String, u64)>,
    ghost: VecDeque<u64>,
    ghost_set: HashSet<u64>,
    next_generation: u64,
}

/// Removed objects, for the tag index to forget once the shard lock is released.
type Removed = Vec<(String, Arc<CachedObject>)>;

impl Store {
    pub fn new(max_memory: u64, max_object_size: u64, evictions: Counter) -> Self {
        // Enough shards to spread contention, few enough that each holds several large objects.
        let shards = (max_memory / max_object_size.max(1) / 4).clamp(1, 16);
        let budget = max_memory / shards;
        Self {
            shards: (0..shards)
                .map(|_| Mutex::new(Shard::new(budget)))
                .collect(),
            max_memory,
            tags: TagIndex::default(),
            evictions,
        }
    }

    /// Unkeyed, as before with SipHash's fixed keys, and ~10 times cheaper (SipHash was 1.4% of a
    /// hit): keys steered into one shard only make it evict within its own budget, and the map
    /// inside a shard keeps std's keyed SipHash against collision floods.
    fn shard(&self, primary: &str) -> &Mutex<Shard> {
        let hash = foldhash::fast::FixedState::default().hash_one(primary);
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }

    /// The stored variant of `primary` that matches `request`'s Vary'd headers.
    pub fn lookup(&self, primary: &str, request: &HeaderMap) -> Option<Arc<CachedObject>> {
        let mut shard = self.shard(primary).lock().expect("not poisoned");
        let resource = shard.resources.get_mut(primary)?;
        let wanted = key::variant(&resource.vary, request);
        let variant = resource.variants.iter_mut().find(|v| v.key == wanted)?;
        variant.freq = (variant.freq + 1).min(3);
        Some(variant.object.clone())
    }

    /// Stores `object` as the variant of `primary` selected by `request`, evicting as needed.
    pub fn insert(
        &self,
        primary: &str,
        request: &HeaderMap,
        object: CachedObject,
    ) -> Arc<CachedObject> {
        let size = object.size(primary);
        let object = Arc::new(object);
        if size > self.max_memory {
            return object;
        }
        let tags = object.tags.clone();
        let mut removed = Removed::new();
        {
            let mut shard = self.shard(primary).lock().expect("not poisoned");
            shard.insert(primary, request, object.clone(), size, &mut removed);
            let evicted = shard.evict(&mut removed);
            self.evictions.inc_by(evicted);
        }
        self.forget(&removed);
        self.tags.add(primary, &tags);
        object
    }

    /// Purges every variant of `primary`; returns how many there were.
    pub fn purge(&self, primary: &str, mode: PurgeMode) -> usize {
        let mut shard = self.shard(primary).lock().expect("not poisoned");
        match mode {
            PurgeMode::Hard => {
                let mut removed = Removed::new();
                shard.remove_resource(primary, &mut removed);
                drop(shard);
                self.forget(&removed);
                removed.len()
            }
            PurgeMode::Soft => {
                let Some(resource) = shard.resources.get(primary) else {
                    return 0;
                };
                let now = Instant::now();
                for variant in &resource.variants {
                    // A second soft purge keeps the first mark: the copy has been stale since.
                    let _ = variant.object.soft_purged.set(now);
                }
                resource.variants.len()
            }
        }
    }

    /// Purges every object stored with any of `tags`; returns how many.
    pub fn purge_tags(&self, tags: &[String], mode: PurgeMode) -> usize {
        self.tags
            .lookup(tags)
            .iter()
            .map(|primary| self.purge(primary, mode))
            .sum()
    }

    pub fn stats(&self) -> StoreStats {
        let mut stats = StoreStats {
            max_bytes: self.max_memory,
            ..StoreStats::default()
        };
        for shard in &self.shards {
            let shard = shard.lock().expect("not poisoned");
            stats.bytes += shard.used;
            stats.objects += shard
                .resources
                .values()
                .map(|r| r.variants.len() as u64)
                .sum::<u64>();
        }
        stats
    }

    /// Drops removed objects from the tag index. A resource that still has variants stays
    /// indexed under every tag it had: purging one URL too many is harmless, missing one is not.
    fn forget(&self, removed: &Removed) {
        for (primary, object) in removed {
            let still_stored = self
                .shard(primary)
                .lock()
                .expect("not poisoned")
                .resources
                .contains_key(primary);
            if !still_stored {
                self.tags.remove(primary, &object.tags);
            }
        }
    }
}

fn ghost_hash(primary: &str, variant: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    primary.hash(&mut hasher);
    variant.hash(&mut hasher);
    hasher.finish()
}

impl Shard {
    fn new(budget: u64) -> Self {
        Self {
            budget,
            used: 0,
            small_used: 0,
            resources: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghost_set: HashSet::new(),
            next_generation: 0,
        }
    }

    fn insert(
        &mut self,
        primary: &str,
        request: &HeaderMap,
        object: Arc<CachedObject>,
        size: u64,
        removed: &mut Removed,
    ) {
        // A different Vary means the old variants were keyed on other headers: drop them.
        if self
            .resources
            .get(primary)
            .is_some_and(|r| r.vary != object.vary)
        {
            self.remove_resource(primary, removed);
        }
        let variant_key = key::variant(&object.vary, request);
        let hash = ghost_hash(primary, &variant_key);
        let in_main = self.ghost_set.remove(&hash);
        self.next_generation += 1;
        let generation = self.next_generation;
        let vary = object.vary.clone();
        let variant = Variant {
            key: variant_key,
            object,
            size,
            freq: 0,
            in_main,
            generation,
        };
        let resource = self
            .resources
            .entry(primary.to_owned())
            .or_insert_with(|| Resource {
                vary,
                variants: Vec::new(),
            });
        let previous = match resource.variants.iter().position(|v| v.key == variant.key) {
            Some(index) => Some(std::mem::replace(&mut resource.variants[index], variant)),
            None => {
                resource.variants.push(variant);
                None
            }
        };
        if let Some(previous) = previous {
            self.account_removal(&previous);
            removed.push((primary.to_owned(), previous.object));
        }
        self.used += size;
        if in_main {
            self.main.push_back((primary.to_owned(), generation));
        } else {
            self.small_used += size;
            self.small.push_back((primary.to_owned(), generation));
        }
    }

    fn account_removal(&mut self, variant: &Variant) {
        self.used -= variant.size;
        if !variant.in_main {
            self.small_used -= variant.size;
        }
    }

    fn remove_resource(&mut self, primary: &str, removed: &mut Removed) {
        if let Some(resource) = self.resources.remove(primary) {
            for variant in resource.variants {
                self.account_removal(&variant);
                removed.push((primary.to_owned(), variant.object));
            }
        }
    }

    /// Evicts until the shard fits its budget; returns how many objects went.
    fn evict(&mut self, removed: &mut Removed) -> u64 {
        let mut evicted = 0;
        while self.used > self.budget {
            let from_small = self.small_used > self.budget / 10 || self.main.is_empty();
            let queue = if from_small {
                &mut self.small
            } else {
                &mut self.main
            };
            let Some((primary, generation)) = queue.pop_front() else {
                break;
            };
            let Entry::Occupied(mut resource) = self.resources.entry(primary) else {
                continue;
            };
            let Some(index) = resource
                .get()
                .variants
                .iter()
                .position(|v| v.generation == generation)
            else {
                continue;
            };
            let variant = &mut resource.get_mut().variants[index];
            if variant.freq > 0 {
                if from_small {
                    // Hit while on probation: promote to main.
                    variant.in_main = true;
                    variant.freq = 0;
                    self.small_used -= variant.size;
                } else {
                    variant.freq -= 1;
                }
                let requeued = (resource.key().clone(), generation);
                self.main.push_back(requeued);
                continue;
            }
            let variant = resource.get_mut().variants.swap_remove(index);
            let primary = if resource.get().variants.is_empty() {
                resource.remove_entry().0
            } else {
                resource.key().clone()
            };
            if from_small {
                self.remember_ghost(ghost_hash(&primary, &variant.key));
            }
            self.account_removal(&variant);
            removed.push((primary, variant.object));
            evicted += 1;
        }
        evicted
    }

    fn remember_ghost(&mut self, hash: u64) {
        if self.ghost_set.insert(hash) {
            self.ghost.push_back(hash);
        }
        // The ghost queue remembers about as many objects as main holds.
        let capacity = self.main.len().max(64);
        while self.ghost.len() > capacity {
            if let Some(old) = self.ghost.pop_front() {
                self.ghost_set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(body_len: usize) -> CachedObject {
        CachedObject {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body_len]),
            stored_at: Instant::now(),
            freshness: Freshness {
                lifetime: Duration::from_secs(60),
                initial_age: Duration::ZERO,
                grace: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                revalidate_always: false,
            },
            vary: Vec::new(),
            tags: vec!["t".into()],
            soft_purged: OnceLock::new(),
        }
    }

    #[test]
    fn stays_within_memory_and_keeps_the_popular_object() {
        let evictions = Counter::default();
        let store = Store::new(64 * 1024, 4 * 1024, evictions.clone());
        let none = HeaderMap::new();
        store.insert("/popular", &none, object(2000));
        for i in 0..200 {
            assert!(
                store.lookup("/popular", &none).is_some(),
                "popular evicted at {i}"
            );
            store.insert(&format!("/one-off/{i}"), &none, object(2000));
        }
        let stats = store.stats();
        assert!(stats.bytes <= 64 * 1024, "{stats:?}");
        assert!(evictions.get() > 100);
        assert_eq!(
            store.purge_tags(&["t".into()], PurgeMode::Soft) as u64,
            stats.objects
        );
        assert_eq!(
            store.stats().objects,
            stats.objects,
            "soft purges keep objects"
        );
        assert_eq!(
            store.purge_tags(&["t".into()], PurgeMode::Hard) as u64,
            stats.objects
        );
        assert_eq!(store.stats().objects, 0);
        assert_eq!(store.stats().bytes, 0);
    }

    #[test]
    fn a_soft_purged_object_is_stale_and_stands_in_for_errors_from_the_purge_on() {
        let store = Store::new(64 * 1024, 4 * 1024, Counter::default());
        let none = HeaderMap::new();
        let mut fresh = object(10);
        fresh.freshness.grace = Duration::from_secs(600);
        fresh.freshness.stale_if_error = Duration::from_secs(10);
        let stored = store.insert("/p", &none, fresh);
        let now = Instant::now();
        assert_eq!(stored.usable(now), Usable::Fresh);
        assert_eq!(store.purge("/p", PurgeMode::Soft), 1);
        let purged = *stored.soft_purged.get().expect("marked");
        assert_eq!(
            stored.usable(purged),
            Usable::Stale,
            "no grace after a soft purge"
        );
        assert!(stored.usable_on_error(purged + Duration::from_secs(9)));
        assert!(
            !stored.usable_on_error(purged + Duration::from_secs(11)),
            "stale-if-error counts from the purge, not from the end of the lifetime"
        );
        assert_eq!(store.purge("/p", PurgeMode::Soft), 1);
        assert_eq!(
            stored.soft_purged.get(),
            Some(&purged),
            "the first mark stays"
        );
        assert_eq!(store.purge("/p", PurgeMode::Hard), 1);
        assert!(store.lookup("/p", &none).is_none());
    }
}
