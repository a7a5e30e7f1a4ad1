//! The one store behind both protocols: a memory-bounded map from byte keys to byte values with
//! flags, a CAS version and an expiry time.
//!
//! The keys are spread by hash over independent shards, each behind its own mutex, so requests
//! on different keys rarely wait for each other and no lock is global. Each shard owns an equal
//! part of `--max-memory` and evicts with [S3-FIFO](eviction) when a write would exceed it.
//!
//! Memory is counted as the allocator sees it, not as payload: an item's key and value share one
//! heap allocation, charged at glibc's chunk size (8 bytes of header, rounded up to 16), and the
//! shard's structures — the slot slab, the hash table, the free list, the ghost queue — are
//! charged at their allocated capacity. What is left uncounted is per-process (the runtime,
//! connection buffers), documented in the README.
//!
//! Every operation takes `now` (Unix milliseconds) so that expiry is a pure function of it: an
//! expired item found on access is removed then ("lazy expiry"), and [`Store::expire_some`]
//! lets the background task reclaim expired items nobody asks for.

mod eviction;

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::{DefaultHashBuilder, HashTable};

use eviction::{Links, MAX_FREQUENCY, NIL, Queue, S3Fifo, Slab};

/// An item as a command sees it while the shard is locked.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub value: &'a [u8],
    /// The memcached client flags (RESP writes store 0).
    pub flags: u32,
    /// The item's version for compare-and-swap; changes on every write.
    pub cas: u64,
    /// Unix milliseconds after which the item is gone.
    pub expires_at: Option<u64>,
    /// Whether it was read since it was stored (memcached's meta `h` flag).
    pub fetched: bool,
    /// Marked stale by a meta delete with `I`: served, but to be recomputed.
    pub stale: bool,
    /// A meta get has already told one client it "won" the right to recompute it.
    pub win_sent: bool,
    /// Unix seconds of its last access (memcached's meta `l` flag).
    pub last_access: u64,
}

/// What a command decided to do with the item it looked at.
#[derive(Debug)]
pub enum Write<'v> {
    /// Leave it as it is.
    Keep,
    /// Delete it (if it exists).
    Remove,
    /// Store this value, creating the item or replacing it; with `cas`, the item takes that
    /// CAS value instead of a new unique one (memcached meta `E`). `stale` stores it marked
    /// stale, keeping whether a win was already sent (memcached `ms … I` with an older CAS: a
    /// late writer's value is kept but still to be recomputed).
    Put {
        value: Cow<'v, [u8]>,
        flags: u32,
        expires_at: Option<u64>,
        cas: Option<u64>,
        stale: bool,
    },
    /// Change only the expiry of the existing item.
    Expire(Option<u64>),
    /// Mark the existing item (memcached meta, stale-while-revalidate): `stale` also gives it
    /// a new CAS (`cas` if given, memcached `md … E`), so that a client holding the old one
    /// cannot overwrite the recomputed value, and forgets a win sent before, so that its next
    /// reader recomputes it; `expires_at` changes its expiry when given.
    Mark {
        stale: bool,
        win_sent: bool,
        expires_at: Option<Option<u64>>,
        cas: Option<u64>,
    },
    /// Create an empty item whose win is already sent (meta get `N` on a miss): the one client
    /// told so recomputes the value while the others see the placeholder.
    Vivify { expires_at: Option<u64> },
}

/// The bits of [`Links::marks`].
mod marks {
    pub const FETCHED: u8 = 1;
    pub const STALE: u8 = 2;
    pub const WIN_SENT: u8 = 4;
}

/// Whether a look-up counts in the hit/miss statistics (reads do, writes don't — as in Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("object too large for cache")]
    TooLarge,
    #[error("out of memory storing object")]
    OutOfMemory,
}

/// Counters summed over the shards.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub items: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expired: u64,
    pub total_items: u64,
    /// Items with a TTL.
    pub with_ttl: u64,
}

/// The sharded store.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
    max_memory: u64,
    max_item_size: usize,
    /// A `flush_all <delay>` waiting to happen, in Unix milliseconds (0: none).
    flush_at: AtomicU64,
}

impl Store {
    /// A store of at most `max_memory` bytes holding values of at most `max_item_size` bytes.
    pub fn new(max_memory: u64, max_item_size: usize) -> Self {
        // Enough shards that two cores rarely meet on one lock, but each shard big enough for
        // several of the largest items: a shard evicts only its own items.
        let per_shard_floor = (max_item_size as u64).saturating_mul(4).max(64 * 1024);
        let shard_count = (max_memory / per_shard_floor).clamp(1, 64);
        let shard_count = 1u64 << shard_count.ilog2();
        let hasher = DefaultHashBuilder::default();
        let shards = (0..shard_count)
            .map(|index| {
                Mutex::new(Shard::new(
                    index,
                    shard_count.trailing_zeros(),
                    max_memory / shard_count,
                    hasher.clone(),
                ))
            })
            .collect();
        Self {
            shards,
            hasher,
            max_memory,
            max_item_size,
            flush_at: AtomicU64::new(0),
        }
    }

    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    pub fn max_item_size(&self) -> usize {
        self.max_item_size
    }

    /// Looks `key` up and lets `decide` say what to do with it, all under the shard's lock: the
    /// one primitive every read-modify-write command (SET NX, INCR, APPEND, cas…) is built on.
    pub fn update<'v, R>(
        &self,
        key: &[u8],
        now: u64,
        lookup: Lookup,
        decide: impl FnOnce(Option<Entry<'_>>) -> (Write<'v>, R),
    ) -> Result<R, StoreError> {
        self.run_pending_flush(now);
        let hash = self.hasher.hash_one(key);
        let mut shard = self.shard(hash);
        let slot = shard.find(hash, key, now);
        if lookup == Lookup::Read {
            match slot {
                Some(_) => shard.counters.hits += 1,
                None => shard.counters.misses += 1,
            }
        }
        let (write, result) = decide(slot.map(|slot| shard.slot(slot).entry()));
        let expired = |at: Option<u64>| at.is_some_and(|at| at <= now);
        match (write, slot) {
            (Write::Put { value, .. }, _) if key.len() + value.len() > self.max_item_size => {
                return Err(StoreError::TooLarge);
            }
            // Writing an item that expires at once (memcached's negative exptime, EXPIRE with
            // a time in the past) deletes it.
            (Write::Put { expires_at, .. } | Write::Expire(expires_at), Some(slot))
                if expired(expires_at) =>
            {
                shard.remove(slot, hash);
            }
            (Write::Put { expires_at, .. }, None) if expired(expires_at) => {}
            (
                Write::Put {
                    value,
                    flags,
                    expires_at,
                    cas,
                    stale,
                },
                existing,
            ) => {
                let win_sent =
                    existing.map_or(0, |slot| shard.slot(slot).links.marks & marks::WIN_SENT);
                let item = NewItem {
                    value: &value,
                    flags,
                    expires_at: expires_at.unwrap_or(0),
                    cas,
                    marks: if stale { marks::STALE | win_sent } else { 0 },
                };
                shard.put(hash, existing, key, item, now, lookup)?;
            }
            (Write::Remove, Some(slot)) => shard.remove(slot, hash),
            (Write::Expire(expires_at), Some(slot)) => {
                shard.set_expiry(slot, expires_at.unwrap_or(0));
                shard.accessed(slot, now, lookup);
            }
            (
                Write::Mark {
                    expires_at: Some(expires_at),
                    ..
                },
                Some(slot),
            ) if expired(expires_at) => {
                shard.remove(slot, hash);
            }
            (
                Write::Mark {
                    stale,
                    win_sent,
                    expires_at,
                    cas,
                },
                Some(slot),
            ) => {
                if let Some(expires_at) = expires_at {
                    shard.set_expiry(slot, expires_at.unwrap_or(0));
                }
                if stale {
                    let cas = cas.unwrap_or_else(|| shard.take_cas());
                    let item = shard.slot_mut(slot);
                    item.cas = cas;
                    item.links.marks = (item.links.marks | marks::STALE) & !marks::WIN_SENT;
                }
                if win_sent {
                    shard.slot_mut(slot).links.marks |= marks::WIN_SENT;
                }
                shard.accessed(slot, now, lookup);
            }
            (Write::Vivify { expires_at }, None) if !expired(expires_at) => {
                let item = NewItem {
                    value: &[],
                    flags: 0,
                    expires_at: expires_at.unwrap_or(0),
                    cas: None,
                    marks: marks::WIN_SENT,
                };
                shard.put(hash, None, key, item, now, lookup)?;
            }
            (Write::Keep | Write::Vivify { .. }, Some(slot)) => shard.accessed(slot, now, lookup),
            (
                Write::Keep
                | Write::Remove
                | Write::Expire(_)
                | Write::Mark { .. }
                | Write::Vivify { .. },
                None,
            ) => {}
        }
        Ok(result)
    }

    /// Reads `key`, counting a hit or a miss.
    pub fn read<R>(&self, key: &[u8], now: u64, read: impl FnOnce(Entry<'_>) -> R) -> Option<R> {
        self.update(key, now, Lookup::Read, |entry| {
            (Write::Keep, entry.map(read))
        })
        .unwrap_or(None)
    }

    /// Stores `value` under `key` unconditionally.
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u32,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.update(key, now, Lookup::Write, |_| {
            (
                Write::Put {
                    value: Cow::Borrowed(value),
                    flags,
                    expires_at,
                    cas: None,
                    stale: false,
                },
                (),
            )
        })
    }

    /// Stores every pair — or, with `only_if_all_absent`, none if any of the keys exists — as
    /// one step (Redis's MSET and MSETNX): the shards of all the keys are locked together, so
    /// no other request sees or makes a state in between. They are locked in index order, and
    /// every other operation holds one shard at a time, so this cannot deadlock. Whether it
    /// stored; on an error nothing is stored.
    pub fn set_many(
        &self,
        pairs: &[(&[u8], &[u8])],
        only_if_all_absent: bool,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.run_pending_flush(now);
        let hashes: Vec<u64> = pairs
            .iter()
            .map(|(key, _)| self.hasher.hash_one(key))
            .collect();
        let mut indices: Vec<usize> = hashes.iter().map(|&hash| self.shard_index(hash)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut shards: Vec<MutexGuard<'_, Shard>> = indices
            .iter()
            .map(|&index| lock(&self.shards[index]))
            .collect();
        let position = |hash| {
            indices
                .binary_search(&self.shard_index(hash))
                .unwrap_or_else(|_| unreachable!("every key's shard is locked"))
        };
        for (&(key, value), &hash) in pairs.iter().zip(&hashes) {
            let shard = &mut shards[position(hash)];
            if key.len() + value.len() > self.max_item_size {
                return Err(StoreError::TooLarge);
            }
            if !shard.can_hold(key.len() + value.len()) {
                return Err(StoreError::OutOfMemory);
            }
            if only_if_all_absent && shard.find(hash, key, now).is_some() {
                return Ok(false);
            }
        }
        for (&(key, value), &hash) in pairs.iter().zip(&hashes) {
            let shard = &mut shards[position(hash)];
            let existing = shard.find(hash, key, now);
            let item = NewItem {
                value,
                flags: 0,
                expires_at: 0,
                cas: None,
                marks: 0,
            };
            shard.put(hash, existing, key, item, now, Lookup::Write)?;
        }
        Ok(true)
    }

    /// Deletes `key`; whether it existed.
    pub fn remove(&self, key: &[u8], now: u64) -> bool {
        self.update(key, now, Lookup::Write, |entry| {
            (Write::Remove, entry.is_some())
        })
        .unwrap_or(false)
    }

    /// Whether `key` exists (not counted as a read).
    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        self.update(key, now, Lookup::Write, |entry| {
            (Write::Keep, entry.is_some())
        })
        .unwrap_or(false)
    }

    /// Deletes every item now.
    pub fn flush(&self) {
        self.flush_at.store(0, Ordering::Relaxed);
        for shard in &self.shards {
            lock(shard).clear();
        }
    }

    /// Deletes every item at `at` (Unix milliseconds): memcached's `flush_all <delay>`.
    pub fn flush_later(&self, at: u64) {
        self.flush_at.store(at, Ordering::Relaxed);
    }

    fn run_pending_flush(&self, now: u64) {
        let at = self.flush_at.load(Ordering::Relaxed);
        if at != 0
            && now >= at
            && self
                .flush_at
                .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            for shard in &self.shards {
                lock(shard).clear();
            }
        }
    }

    /// Removes expired items from a sample of each shard, sampling again while many of a
    /// sample had expired (Redis's active expiry). Returns how many were removed.
    pub fn expire_some(&self, now: u64, sample: usize) -> u64 {
        self.run_pending_flush(now);
        let mut removed = 0;
        for shard in &self.shards {
            // Bounded so that one tick never holds a shard for long.
            for _ in 0..16 {
                let (expired, sampled) = lock(shard).expire_sample(now, sample);
                removed += expired;
                if sampled == 0 || expired * 4 < sampled {
                    break;
                }
            }
        }
        removed
    }

    /// Visits up to `count` slots from `cursor` and hands each live key to `visit`; returns the
    /// cursor to continue from, 0 when the whole store has been visited. A key present for the
    /// whole scan is visited at least once, since items never move between slots.
    pub fn scan(&self, cursor: u64, count: usize, now: u64, mut visit: impl FnMut(&[u8])) -> u64 {
        let mut shard_index = (cursor >> 32) as usize;
        let mut slot_index = (cursor & u64::from(u32::MAX)) as usize;
        let mut budget = count.max(1);
        while shard_index < self.shards.len() {
            let shard = lock(&self.shards[shard_index]);
            while slot_index < shard.slots.len() {
                if budget == 0 {
                    return ((shard_index as u64) << 32) | slot_index as u64;
                }
                if let Some(slot) = &shard.slots[slot_index]
                    && !slot.expired(now)
                {
                    visit(slot.key());
                }
                slot_index += 1;
                budget -= 1;
            }
            shard_index += 1;
            slot_index = 0;
        }
        0
    }

    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for shard in &self.shards {
            let shard = lock(shard);
            stats.items += shard.table.len() as u64;
            stats.bytes += shard.memory();
            stats.hits += shard.counters.hits;
            stats.misses += shard.counters.misses;
            stats.evictions += shard.counters.evictions;
            stats.expired += shard.counters.expired;
            stats.total_items += shard.counters.stored;
            stats.with_ttl += shard.with_ttl;
        }
        stats
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_index(hash)])
    }

    fn shard_index(&self, hash: u64) -> usize {
        // The high bits: hashbrown uses the low ones for its own bucket choice.
        (hash >> 58) as usize & (self.shards.len() - 1)
    }
}

/// Locks a shard. No code panics while holding one, but should a bug ever make it so, the
/// shard's data is still consistent enough to serve: serving beats taking the node down.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One stored item: key and value share one allocation.
#[derive(Debug)]
struct Slot {
    data: Box<[u8]>,
    key_len: u32,
    flags: u32,
    cas: u64,
    /// Unix milliseconds; 0 means never.
    expires_at: u64,
    /// Unix seconds (u32 lasts until 2106 and keeps the slot at 56 bytes).
    last_access: u32,
    links: Links,
}

impl Slot {
    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }

    fn entry(&self) -> Entry<'_> {
        Entry {
            value: self.value(),
            flags: self.flags,
            cas: self.cas,
            expires_at: (self.expires_at != 0).then_some(self.expires_at),
            fetched: self.links.marks & marks::FETCHED != 0,
            stale: self.links.marks & marks::STALE != 0,
            win_sent: self.links.marks & marks::WIN_SENT != 0,
            last_access: u64::from(self.last_access),
        }
    }
}

/// The parts of an item being written.
struct NewItem<'a> {
    value: &'a [u8],
    flags: u32,
    /// Unix milliseconds; 0 means never.
    expires_at: u64,
    /// A CAS value chosen by the client, else a new unique one.
    cas: Option<u64>,
    /// The meta-protocol marks it starts with.
    marks: u8,
}

/// An item's allocation: its key, then its value.
fn item_data(key: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut data = Vec::with_capacity(key.len() + value.len());
    data.extend_from_slice(key);
    data.extend_from_slice(value);
    data.into_boxed_slice()
}

/// What the allocator hands out for a request of `len` bytes (glibc: an 8-byte header, 16-byte
/// granularity, 32 bytes at least).
fn allocation_charge(len: usize) -> u64 {
    ((len as u64 + 8).div_ceil(16) * 16).max(32)
}

#[derive(Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    evictions: u64,
    expired: u64,
    stored: u64,
}

#[derive(Debug)]
struct Shard {
    table: HashTable<u32>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    policy: S3Fifo,
    hasher: DefaultHashBuilder,
    /// Sum of the items' allocation charges.
    data_bytes: u64,
    capacity: u64,
    /// CAS values are `counter << shard_bits | shard index`: unique across shards without a
    /// shared counter.
    next_cas: u64,
    index: u64,
    shard_bits: u32,
    counters: Counters,
    /// How many items have a TTL (INFO's `expires`).
    with_ttl: u64,
    /// Where the next expiry sample starts.
    sample_cursor: usize,
}

impl Slab for Vec<Option<Slot>> {
    fn links(&mut self, slot: u32) -> &mut Links {
        &mut occupied_mut(self, slot).links
    }

    fn charge(&self, slot: u32) -> u64 {
        match &self[slot as usize] {
            Some(slot) => allocation_charge(slot.data.len()),
            None => unreachable!("the eviction queues link only occupied slots"),
        }
    }
}

fn occupied_mut(slots: &mut [Option<Slot>], slot: u32) -> &mut Slot {
    match &mut slots[slot as usize] {
        Some(slot) => slot,
        None => unreachable!("the table and queues reference only occupied slots"),
    }
}

impl Shard {
    fn new(index: u64, shard_bits: u32, capacity: u64, hasher: DefaultHashBuilder) -> Self {
        Self {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            policy: S3Fifo::new(),
            hasher,
            data_bytes: 0,
            capacity,
            next_cas: 1,
            index,
            shard_bits,
            counters: Counters::default(),
            with_ttl: 0,
            sample_cursor: 0,
        }
    }

    fn slot(&self, slot: u32) -> &Slot {
        match &self.slots[slot as usize] {
            Some(slot) => slot,
            None => unreachable!("the table references only occupied slots"),
        }
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Slot {
        occupied_mut(&mut self.slots, slot)
    }

    /// Everything this shard has allocated.
    fn memory(&self) -> u64 {
        self.data_bytes
            + (self.slots.capacity() * size_of::<Option<Slot>>()) as u64
            + self.table.allocation_size() as u64
            + (self.free.capacity() * size_of::<u32>()) as u64
            + self.policy.ghost_bytes()
    }

    /// Whether an item of `len` bytes of key and value fits in this shard at all.
    fn can_hold(&self, len: usize) -> bool {
        allocation_charge(len) + (size_of::<Option<Slot>>() as u64) <= self.capacity
    }

    /// The live item under `key`, removing it first if it has expired.
    fn find(&mut self, hash: u64, key: &[u8], now: u64) -> Option<u32> {
        let slots = &self.slots;
        let slot = *self.table.find(hash, |&slot| match &slots[slot as usize] {
            Some(candidate) => candidate.key() == key,
            None => false,
        })?;
        if self.slot(slot).expired(now) {
            self.remove(slot, hash);
            self.counters.expired += 1;
            return None;
        }
        Some(slot)
    }

    /// Notes an access for the eviction policy and the meta protocol's `h` and `l` flags.
    fn accessed(&mut self, slot: u32, now: u64, lookup: Lookup) {
        let item = self.slot_mut(slot);
        item.last_access = (now / 1000) as u32;
        let links = &mut item.links;
        links.frequency = (links.frequency + 1).min(MAX_FREQUENCY);
        if lookup == Lookup::Read {
            links.marks |= marks::FETCHED;
        }
    }

    fn set_expiry(&mut self, slot: u32, expires_at: u64) {
        let item = self.slot_mut(slot);
        let had_ttl = item.expires_at != 0;
        item.expires_at = expires_at;
        self.with_ttl = self.with_ttl + u64::from(expires_at != 0) - u64::from(had_ttl);
    }

    fn take_cas(&mut self) -> u64 {
        let cas = (self.next_cas << self.shard_bits) | self.index;
        self.next_cas += 1;
        cas
    }

    /// Stores `item` under `key`, replacing `existing` if it is there, then evicts as needed.
    fn put(
        &mut self,
        hash: u64,
        existing: Option<u32>,
        key: &[u8],
        item: NewItem<'_>,
        now: u64,
        lookup: Lookup,
    ) -> Result<(), StoreError> {
        let NewItem {
            value,
            flags,
            expires_at,
            cas,
            marks,
        } = item;
        let len = key.len() + value.len();
        if !self.can_hold(len) {
            return Err(StoreError::OutOfMemory);
        }
        let charge = allocation_charge(len);
        let cas = cas.unwrap_or_else(|| self.take_cas());
        self.counters.stored += 1;
        let slot = match existing {
            Some(slot) => {
                self.set_expiry(slot, expires_at);
                let item = self.slot_mut(slot);
                let old_charge = allocation_charge(item.data.len());
                if item.data.len() == len {
                    // Same key, same size (the common overwrite): reuse the allocation rather
                    // than allocate, copy the key again and free the old one.
                    item.data[key.len()..].copy_from_slice(value);
                } else {
                    item.data = item_data(key, value);
                }
                item.flags = flags;
                item.cas = cas;
                // A new value is not read yet.
                item.links.marks = marks;
                let queue = item.links.queue;
                self.policy.resize(queue, old_charge, charge);
                self.data_bytes = self.data_bytes - old_charge + charge;
                self.accessed(slot, now, lookup);
                slot
            }
            None => {
                let item = Slot {
                    data: item_data(key, value),
                    key_len: key.len() as u32,
                    flags,
                    cas,
                    expires_at: 0,
                    // A new item starts unread: S3-FIFO admits it on probation.
                    last_access: (now / 1000) as u32,
                    links: Links {
                        prev: NIL,
                        next: NIL,
                        queue: Queue::Small,
                        frequency: 0,
                        marks,
                    },
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = Some(item);
                        slot
                    }
                    None => {
                        self.slots.push(Some(item));
                        (self.slots.len() - 1) as u32
                    }
                };
                let links = self.policy.admit(&mut self.slots, slot, hash);
                self.slot_mut(slot).links = Links { marks, ..links };
                let (slots, hasher) = (&self.slots, &self.hasher);
                self.table
                    .insert_unique(hash, slot, |&other| match &slots[other as usize] {
                        Some(other) => hasher.hash_one(other.key()),
                        None => unreachable!("the table references only occupied slots"),
                    });
                self.data_bytes += charge;
                self.set_expiry(slot, expires_at);
                slot
            }
        };
        self.evict_until_within(slot);
        Ok(())
    }

    /// Evicts until the shard is within its budget. An item alone in its shard stays even when
    /// over (the slab and table of a tiny shard may exceed the budget by themselves).
    fn evict_until_within(&mut self, keep: u32) {
        while self.memory() > self.capacity {
            let Some(victim) = self.policy.victim(&mut self.slots, self.capacity) else {
                return;
            };
            if victim.slot == keep && self.table.len() == 1 {
                return;
            }
            let hash = self.hasher.hash_one(self.slot(victim.slot).key());
            if victim.to_ghost {
                self.policy.remember(hash, self.table.len());
            }
            self.remove(victim.slot, hash);
            self.counters.evictions += 1;
        }
    }

    /// Removes the item in `slot`, whose key hashes to `hash` (callers have it already, or
    /// hash once for both the ghost queue and this).
    fn remove(&mut self, slot: u32, hash: u64) {
        self.policy.unlink(&mut self.slots, slot);
        if let Ok(entry) = self.table.find_entry(hash, |&other| other == slot) {
            entry.remove();
        }
        self.set_expiry(slot, 0);
        if let Some(item) = self.slots[slot as usize].take() {
            self.data_bytes -= allocation_charge(item.data.len());
        }
        self.free.push(slot);
    }

    fn clear(&mut self) {
        self.table = HashTable::new();
        self.slots = Vec::new();
        self.free = Vec::new();
        self.policy.clear();
        self.data_bytes = 0;
        self.with_ttl = 0;
    }

    /// Checks `sample` slots from where the last sample ended; returns (expired, sampled).
    fn expire_sample(&mut self, now: u64, sample: usize) -> (u64, u64) {
        let len = self.slots.len();
        if len == 0 {
            return (0, 0);
        }
        let (mut expired, mut sampled) = (0, 0);
        for _ in 0..sample.min(len) {
            let slot = self.sample_cursor % len;
            self.sample_cursor = slot + 1;
            if let Some(item) = &self.slots[slot] {
                sampled += 1;
                if item.expired(now) {
                    let hash = self.hasher.hash_one(item.key());
                    self.remove(slot as u32, hash);
                    self.counters.expired += 1;
                    expired += 1;
                }
            }
        }
        (expired, sampled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    #[test]
    fn a_slot_stays_at_56_bytes() {
        // The per-item overhead the README and the memory benchmark quote.
        assert_eq!(size_of::<Option<Slot>>(), 56);
    }

    #[test]
    fn set_get_overwrite_remove() {
        let store = Store::new(1 << 20, 1024);
        assert_eq!(store.read(b"k", NOW, |e| e.value.to_vec()), None);
        store.set(b"k", b"one", 7, None, NOW).unwrap();
        assert_eq!(
            store.read(b"k", NOW, |e| (e.value.to_vec(), e.flags)),
            Some((b"one".to_vec(), 7))
        );
        store.set(b"k", b"two", 0, None, NOW).unwrap();
        assert_eq!(
            store.read(b"k", NOW, |e| e.value.to_vec()),
            Some(b"two".to_vec())
        );
        assert!(store.remove(b"k", NOW));
        assert!(!store.remove(b"k", NOW));
        let stats = store.stats();
        assert_eq!((stats.items, stats.hits, stats.misses), (0, 2, 1));
    }

    #[test]
    fn overwrites_of_the_same_size_and_of_another_size_keep_the_accounting() {
        let store = Store::new(1 << 20, 1024);
        store.set(b"k", &[1; 100], 1, None, NOW).unwrap();
        let bytes = store.stats().bytes;
        store.set(b"k", &[2; 100], 2, Some(NOW + 10), NOW).unwrap();
        assert_eq!(
            store.read(b"k", NOW, |e| (e.value.to_vec(), e.flags, e.expires_at)),
            Some((vec![2; 100], 2, Some(NOW + 10)))
        );
        assert_eq!(store.stats().bytes, bytes, "reused in place");
        store.set(b"k", &[3; 500], 3, None, NOW).unwrap();
        assert!(store.stats().bytes > bytes);
        store.set(b"k", &[4; 100], 4, None, NOW).unwrap();
        assert_eq!(
            store.read(b"k", NOW, |e| (e.value.to_vec(), e.flags, e.expires_at)),
            Some((vec![4; 100], 4, None))
        );
        assert_eq!(store.stats().bytes, bytes);
        assert_eq!(store.stats().items, 1);
    }

    #[test]
    fn cas_changes_on_every_write() {
        let store = Store::new(1 << 20, 1024);
        store.set(b"k", b"v", 0, None, NOW).unwrap();
        let first = store.read(b"k", NOW, |e| e.cas).unwrap();
        store.set(b"k", b"v", 0, None, NOW).unwrap();
        let second = store.read(b"k", NOW, |e| e.cas).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn expired_items_vanish_on_access_and_in_the_background() {
        let store = Store::new(1 << 20, 1024);
        store.set(b"a", b"v", 0, Some(NOW + 10), NOW).unwrap();
        store.set(b"b", b"v", 0, Some(NOW + 10), NOW).unwrap();
        assert!(store.contains(b"a", NOW + 9));
        assert!(!store.contains(b"a", NOW + 10));
        assert_eq!(store.expire_some(NOW + 10, 20), 1);
        let stats = store.stats();
        assert_eq!((stats.items, stats.expired), (0, 2));
    }

    #[test]
    fn memory_stays_within_the_budget_and_evicts() {
        let budget = 256 * 1024;
        let store = Store::new(budget, 1024);
        for i in 0..20_000u32 {
            store
                .set(format!("key:{i}").as_bytes(), &[b'x'; 100], 0, None, NOW)
                .unwrap();
            assert!(store.stats().bytes <= budget, "over budget after {i}");
        }
        let stats = store.stats();
        assert!(stats.evictions > 0);
        assert!(stats.items > 500, "only {} items kept", stats.items);
    }

    #[test]
    fn frequently_read_keys_survive_a_scan_of_one_hit_wonders() {
        let store = Store::new(256 * 1024, 1024);
        let hot: Vec<String> = (0..100).map(|i| format!("hot:{i}")).collect();
        for key in &hot {
            store.set(key.as_bytes(), &[1; 100], 0, None, NOW).unwrap();
        }
        for i in 0..50_000u32 {
            if i % 10 == 0 {
                for key in &hot {
                    store.read(key.as_bytes(), NOW, |_| ());
                }
            }
            store
                .set(format!("cold:{i}").as_bytes(), &[2; 100], 0, None, NOW)
                .unwrap();
        }
        let kept = hot
            .iter()
            .filter(|key| store.contains(key.as_bytes(), NOW))
            .count();
        assert_eq!(kept, hot.len());
    }

    #[test]
    fn too_large_items_are_refused() {
        let store = Store::new(1 << 20, 100);
        assert_eq!(
            store.set(b"k", &[0; 100], 0, None, NOW),
            Err(StoreError::TooLarge)
        );
        store.set(b"k", &[0; 99], 0, None, NOW).unwrap();
    }

    #[test]
    fn scan_visits_every_key_once_when_nothing_changes() {
        let store = Store::new(1 << 22, 1024);
        for i in 0..1000u32 {
            store.set(&i.to_be_bytes(), b"v", 0, None, NOW).unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = store.scan(cursor, 37, NOW, |key| seen.push(key.to_vec()));
            if cursor == 0 {
                break;
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn set_many_stores_all_or_nothing() {
        let store = Store::new(1 << 22, 64);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..100u32)
            .map(|i| (format!("key:{i}").into_bytes(), i.to_be_bytes().to_vec()))
            .collect();
        let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store.set(b"key:99", b"taken", 0, None, NOW).unwrap();
        assert_eq!(store.set_many(&pairs, true, NOW), Ok(false));
        assert_eq!(store.stats().items, 1, "none stored when one key exists");
        let too_large = [(&b"a"[..], &b"v"[..]), (b"b", &[0; 64])];
        assert_eq!(
            store.set_many(&too_large, false, NOW),
            Err(StoreError::TooLarge)
        );
        assert!(!store.contains(b"a", NOW), "none stored on an error");
        assert_eq!(store.set_many(&pairs, false, NOW), Ok(true));
        for (key, value) in &pairs {
            assert_eq!(
                store.read(key, NOW, |e| e.value.to_vec()).as_deref(),
                Some(*value)
            );
        }
    }

    #[test]
    fn delayed_flush_happens_at_its_time() {
        let store = Store::new(1 << 20, 1024);
        store.set(b"k", b"v", 0, None, NOW).unwrap();
        store.flush_later(NOW + 1000);
        assert!(store.contains(b"k", NOW + 999));
        assert!(!store.contains(b"k", NOW + 1000));
    }
}
