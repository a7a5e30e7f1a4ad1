//! `tracing` set-up shared by every binary.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber. The level comes from `RUST_LOG` (default `info`).
///
/// Calling it twice is harmless (the second call keeps the first subscriber), which keeps tests
/// that start several services in one process simple.
pub fn init(format: LogFormat) {
    init_with_writer(format, std::io::stderr);
}

/// Like [`init`], with the lines handed to `writer` instead of stderr — such as a non-blocking
/// writer, so that a slow log reader never stalls a server's event loop.
pub fn init_with_writer<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
