//! The shared cache (RFC 9111): keys, freshness, the memory-bounded store, request coalescing,
//! revalidation and purging.

pub mod coalesce;
pub mod freshness;
pub mod key;
pub mod purge;
pub mod revalidate;
pub mod store;

pub use store::{CachedObject, Store};
