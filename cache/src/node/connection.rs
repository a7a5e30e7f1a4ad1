//! One client connection: read what has arrived, let the protocol answer every complete request
//! in it, write all the replies at once, repeat.
//!
//! Writing once per batch is what makes pipelining pay: a client that sends 16 requests in one
//! packet gets 16 replies in one packet, answered in order.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Replies beyond this many bytes are written before more requests are answered, so a pipeline
/// of large reads does not pile up in memory.
pub(super) const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// How much the input buffer grows by when it is full.
const READ_CHUNK: usize = 16 * 1024;

/// What a session wants after answering what it could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Every complete request was answered; read more.
    NeedInput,
    /// The output passed [`OUTPUT_HIGH_WATER`]: write it, then continue answering.
    OutputFull,
    /// Write what was answered, then close (QUIT, or a protocol error that loses the framing).
    Close,
}

/// A protocol's state for one connection.
pub(super) trait Session: Send + 'static {
    /// Answers the complete requests at the front of `input`, removing them, appending the
    /// replies to `output`.
    fn serve(&mut self, input: &mut BytesMut, output: &mut Vec<u8>) -> Flow;
}

pub(super) async fn serve(
    mut stream: TcpStream,
    mut session: impl Session,
    idle_timeout: Option<Duration>,
    stop: CancellationToken,
) {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = Vec::with_capacity(READ_CHUNK);
    // Registered once per connection: a fresh `cancelled()` per read would enter and leave the
    // token's waiter list (a mutex each way) on every request.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let flow = session.serve(&mut input, &mut output);
        if !output.is_empty() {
            let written = within(idle_timeout, stream.write_all(&output)).await;
            if !matches!(written, Some(Ok(()))) {
                return;
            }
            output.clear();
            if output.capacity() > 4 * OUTPUT_HIGH_WATER {
                output = Vec::with_capacity(READ_CHUNK);
            }
        }
        match flow {
            Flow::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Flow::OutputFull => continue,
            Flow::NeedInput => {}
        }
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK.max(input.len()));
        }
        let read = tokio::select! {
            () = &mut stopped => return,
            read = within(idle_timeout, stream.read_buf(&mut input)) => read,
        };
        match read {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(_)) => {}
            None => {
                tracing::debug!("closing an idle connection");
                return;
            }
        }
    }
}

/// `io`, bounded by `limit` when there is one; `None` when it ran out.
async fn within<T>(limit: Option<Duration>, io: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, io).await.ok(),
        None => Some(io.await),
    }
}
