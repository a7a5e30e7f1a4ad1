//! Test support shared by every leanstack crate (a dev-dependency only).
//!
//! - [`postgres`]: a real PostgreSQL for tests — `DATABASE_URL` when set, otherwise a private
//!   throwaway cluster started from the installed server binaries — and a fresh database for
//!   each test.
//! - [`spawn`]: start one of the project's services in-process on port 0, wait until it answers,
//!   and stop it gracefully.

pub mod postgres;
pub mod spawn;

pub use postgres::{TestDatabase, fresh_database};
pub use spawn::{Spawned, bind_port_0, spawn, wait_for_http};
