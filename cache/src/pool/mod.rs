//! The client pool: consistent hashing over the cache nodes, and cache-aside.
