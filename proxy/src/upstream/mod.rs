//! Everything on the backend side: pools of backends, choosing one, checking their health, and
//! sending them requests.

pub mod balance;
pub mod client;
pub mod connection;
pub mod health;
pub mod pool;

pub use client::{UpstreamBody, UpstreamError, UpstreamRequest};
pub use pool::{Backend, Pool};
