//! The operational plumbing every leanstack binary shares, so that each service starts, logs,
//! reports and stops the same way:
//!
//! - [`logging`]: `tracing` output, human-readable by default or JSON for log shippers.
//! - [`shutdown`]: the SIGTERM/SIGINT future that `main` hands to a service's `run`.
//! - [`http`]: serving an axum router with graceful shutdown bounded by a grace period.
//! - [`metrics`]: a Prometheus `/metrics` endpoint over a per-service registry.
//!
//! Every service exposes `run(listener, config, shutdown)`: `main` passes a bound listener and
//! [`shutdown::signal`], while tests bind port 0 and pass a future they control.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod shutdown;
