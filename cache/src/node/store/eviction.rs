//! S3-FIFO (Yang et al., SOSP 2023): the eviction policy of each shard.
//!
//! Three FIFO queues instead of one LRU list. New items enter a *small* queue (10% of the
//! memory); an item that was read again (twice) while there moves to the *main* queue when it reaches
//! the small queue's tail, the others are evicted and only their key hash is remembered in a
//! *ghost* queue. A key found in the ghost queue when it is inserted again goes straight to
//! main. Main is a CLOCK: an item at its tail that was read since it last passed is given another
//! round, else evicted. One-hit wonders — most keys of a skewed workload — so leave quickly
//! without pushing out the popular ones, and a hit costs a saturating counter increment rather
//! than an LRU list move.
//!
//! The queues are intrusive doubly-linked lists threaded through the shard's slot slab (indices,
//! not pointers), so removing a deleted or expired item from its queue is O(1) and no stale
//! entries pile up.

use std::collections::VecDeque;

use hashbrown::HashSet;

/// Which queue an item is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    Small,
    Main,
}

/// The most reads an item's counter remembers.
pub(super) const MAX_FREQUENCY: u8 = 3;

/// An item leaving the small queue moves to main if it was read at least this often. Twice is
/// the paper's rule; on the Zipf benchmark (`benches/node_eviction.rs`) it beat once by about
/// half a point of hit ratio at every skew.
const PROMOTE_AT: u8 = 2;

/// The small queue's share of the shard's memory, in percent.
const SMALL_PERCENT: u64 = 10;

/// "No slot" in the intrusive links.
pub(super) const NIL: u32 = u32::MAX;

/// The links and bookkeeping each slot carries for the policy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Links {
    pub prev: u32,
    pub next: u32,
    pub queue: Queue,
    pub frequency: u8,
    /// The item's meta-protocol marks (`store::marks`), kept here where they fit in padding.
    pub marks: u8,
}

/// One intrusive FIFO: items enter at the head and leave at the tail.
#[derive(Debug)]
struct List {
    head: u32,
    tail: u32,
    bytes: u64,
}

impl List {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        bytes: 0,
    };
}

/// Access to the slab the lists are threaded through.
pub(super) trait Slab {
    fn links(&mut self, slot: u32) -> &mut Links;
    fn charge(&self, slot: u32) -> u64;
}

/// The three queues of one shard.
#[derive(Debug)]
pub(super) struct S3Fifo {
    small: List,
    main: List,
    ghost: Ghost,
}

/// What [`S3Fifo::victim`] chose.
pub(super) struct Victim {
    pub slot: u32,
    /// Remember the key in the ghost queue (it leaves from the small queue unread).
    pub to_ghost: bool,
}

impl S3Fifo {
    pub fn new() -> Self {
        Self {
            small: List::EMPTY,
            main: List::EMPTY,
            ghost: Ghost::default(),
        }
    }

    /// Links a new item in: to main when its key was evicted recently, else to small.
    pub fn admit(&mut self, slab: &mut impl Slab, slot: u32, key_hash: u64) -> Links {
        let queue = if self.ghost.take(key_hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        let charge = slab.charge(slot);
        let list = self.list(queue);
        let links = Links {
            prev: NIL,
            next: list.head,
            queue,
            frequency: 0,
            marks: 0,
        };
        list.bytes += charge;
        let old_head = list.head;
        list.head = slot;
        if old_head == NIL {
            list.tail = slot;
        } else {
            slab.links(old_head).prev = slot;
        }
        links
    }

    /// Unlinks an item that is being removed (deleted, expired, evicted or replaced).
    pub fn unlink(&mut self, slab: &mut impl Slab, slot: u32) {
        let charge = slab.charge(slot);
        let Links {
            prev, next, queue, ..
        } = *slab.links(slot);
        if prev == NIL {
            self.list(queue).head = next;
        } else {
            slab.links(prev).next = next;
        }
        if next == NIL {
            self.list(queue).tail = prev;
        } else {
            slab.links(next).prev = prev;
        }
        self.list(queue).bytes -= charge;
    }

    /// Accounts for an item whose size changed in place.
    pub fn resize(&mut self, queue: Queue, old_charge: u64, new_charge: u64) {
        let list = self.list(queue);
        list.bytes = list.bytes - old_charge + new_charge;
    }

    /// Picks the next item to evict, moving read items on as the policy says. `capacity` is the
    /// shard's memory budget; returns `None` only when both queues are empty.
    pub fn victim(&mut self, slab: &mut impl Slab, capacity: u64) -> Option<Victim> {
        loop {
            let from_small = self.small.tail != NIL
                && (self.small.bytes * 100 >= capacity * SMALL_PERCENT || self.main.tail == NIL);
            if from_small {
                let slot = self.small.tail;
                if slab.links(slot).frequency >= PROMOTE_AT {
                    self.move_to_main_head(slab, slot);
                    continue;
                }
                return Some(Victim {
                    slot,
                    to_ghost: true,
                });
            }
            let slot = self.main.tail;
            if slot == NIL {
                return None;
            }
            let links = slab.links(slot);
            if links.frequency > 0 {
                links.frequency -= 1;
                self.move_to_main_head(slab, slot);
                continue;
            }
            return Some(Victim {
                slot,
                to_ghost: false,
            });
        }
    }

    /// Remembers an evicted key; the ghost queue holds about as many keys as the shard has items.
    pub fn remember(&mut self, key_hash: u64, items: usize) {
        self.ghost.insert(key_hash, items.max(1));
    }

    /// The ghost queue's memory, which the shard counts against its budget.
    pub fn ghost_bytes(&self) -> u64 {
        self.ghost.bytes()
    }

    pub fn clear(&mut self) {
        *self = Self::new();
    }

    fn move_to_main_head(&mut self, slab: &mut impl Slab, slot: u32) {
        self.unlink(slab, slot);
        let charge = slab.charge(slot);
        let old_head = self.main.head;
        let links = slab.links(slot);
        links.prev = NIL;
        links.next = old_head;
        links.queue = Queue::Main;
        if old_head == NIL {
            self.main.tail = slot;
        } else {
            slab.links(old_head).prev = slot;
        }
        self.main.head = slot;
        self.main.bytes += charge;
    }

    fn list(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }
}

/// Hashes of keys recently evicted from the small queue, oldest first.
#[derive(Debug, Default)]
struct Ghost {
    order: VecDeque<u64>,
    members: HashSet<u64>,
}

impl Ghost {
    /// What one remembered key costs: its hash in the queue and in the set (with the set's
    /// control byte and spare capacity).
    const ENTRY_BYTES: u64 = 8 + 8 + 8;

    fn insert(&mut self, key_hash: u64, limit: usize) {
        if self.members.insert(key_hash) {
            self.order.push_back(key_hash);
        }
        while self.order.len() > limit {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
    }

    fn take(&mut self, key_hash: u64) -> bool {
        // The hash stays in `order` until it ages out; removing it from there would cost O(n).
        self.members.remove(&key_hash)
    }

    fn bytes(&self) -> u64 {
        self.order.len() as u64 * Self::ENTRY_BYTES
    }
}
