//! Hit ratio of the node's store (S3-FIFO) against plain LRU, on Zipf-distributed keys with a
//! cache a tenth the size of the key space.
//!
//! `cargo bench -p cache --bench node_eviction`. Each request reads a key and, on a miss,
//! stores it (cache-aside). Both caches hold the same number of items: the LRU's capacity is
//! set to what the store holds once full, so memory accounting does not tilt the comparison.

use std::collections::{BTreeMap, HashMap};

use cache::node::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: usize = 200_000;
const WARMUP: usize = 1_000_000;
const REQUESTS: usize = 4_000_000;
const VALUE: [u8; 64] = [b'v'; 64];

/// Ranks 0..n with P(rank k) ∝ 1/(k+1)^exponent, by inverting the cumulative distribution.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (1..=n)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        for value in &mut cumulative {
            *value /= total;
        }
        Self { cumulative }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .partition_point(|&p| p < u)
            .min(self.cumulative.len() - 1)
    }
}

/// Least-recently-used, as plainly as it can be written: last-use stamps in a map and their
/// order in a B-tree.
struct Lru {
    capacity: usize,
    clock: u64,
    stamps: HashMap<u64, u64>,
    order: BTreeMap<u64, u64>,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            stamps: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// Reads `key`, inserting it on a miss; whether it was a hit.
    fn access(&mut self, key: u64) -> bool {
        self.clock += 1;
        let hit = match self.stamps.insert(key, self.clock) {
            Some(old) => {
                self.order.remove(&old);
                true
            }
            None => false,
        };
        self.order.insert(self.clock, key);
        if self.stamps.len() > self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.stamps.remove(&oldest);
        }
        hit
    }
}

fn key(rank: usize) -> [u8; 16] {
    let mut key = *b"key:000000000000";
    let digits = format!("{rank:012}");
    key[4..].copy_from_slice(digits.as_bytes());
    key
}

/// The store with a memory budget that holds about `items` of our items.
fn store_holding(items: usize) -> (Store, usize) {
    let mut max_memory = (items * 160) as u64;
    loop {
        let store = Store::new(max_memory, 1024);
        for rank in 0..KEYS {
            store.set(&key(rank), &VALUE, 0, None, 1).unwrap();
        }
        let held = store.stats().items as usize;
        if held.abs_diff(items) * 100 <= items {
            store.flush();
            return (store, held);
        }
        max_memory = max_memory * items as u64 / held as u64;
    }
}

fn main() {
    let target = KEYS / 10;
    let (store, capacity) = store_holding(target);
    println!(
        "{KEYS} keys, cache of {capacity} items ({:.1}% of the key space), {REQUESTS} requests after {WARMUP} warm-up",
        capacity as f64 * 100.0 / KEYS as f64
    );
    println!("| Zipf exponent | S3-FIFO (node) hit ratio | LRU hit ratio | misses saved |");
    println!("|---|---|---|---|");
    for exponent in [0.7, 0.9, 0.99, 1.2] {
        store.flush();
        let zipf = Zipf::new(KEYS, exponent);
        let mut lru = Lru::new(capacity);
        let mut rng = StdRng::seed_from_u64(42);
        let (mut store_hits, mut lru_hits) = (0, 0);
        for request in 0..WARMUP + REQUESTS {
            let rank = zipf.sample(&mut rng);
            let name = key(rank);
            let store_hit = store.read(&name, 1, |_| ()).is_some();
            if !store_hit {
                store.set(&name, &VALUE, 0, None, 1).unwrap();
            }
            let lru_hit = lru.access(rank as u64);
            if request >= WARMUP {
                store_hits += usize::from(store_hit);
                lru_hits += usize::from(lru_hit);
            }
        }
        let store_ratio = store_hits as f64 / REQUESTS as f64;
        let lru_ratio = lru_hits as f64 / REQUESTS as f64;
        println!(
            "| {exponent} | {:.2}% | {:.2}% | {:.1}% |",
            store_ratio * 100.0,
            lru_ratio * 100.0,
            (1.0 - (1.0 - store_ratio) / (1.0 - lru_ratio)) * 100.0
        );
    }
}
