//! The cache tier of leanstack, in two halves:
//!
//! - [`node`]: the `cache` server, a memcached-class node that speaks both the Redis (RESP2/3)
//!   and the memcached (text and meta) protocols over one memory-bounded store.
//! - [`pool`]: the client the app servers use — every app sees every node, keys spread over the
//!   nodes by consistent hashing — with the cache-aside toolkit (`get_or_load`).

pub mod node;
pub mod pool;
