//! The memcached protocol: the classic text commands ([`text`]) and the meta commands
//! ([`meta`]), over the same store as RESP.
//!
//! Requests are lines; the storage commands (`set`, `ms`…) are followed by a data block whose
//! length the line declares. A block over `--max-item-size` is answered with
//! `SERVER_ERROR object too large for cache` and then skipped as it arrives, without being
//! buffered, so the connection goes on.

mod meta;
mod text;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Buf, BytesMut};

use super::connection::{self, Flow, OUTPUT_HIGH_WATER};
use super::expiry::now_ms;
use super::{Node, server};

/// The longest request line (a multi-key `get` can be long; memcached allows about as much).
const MAX_LINE: usize = 64 * 1024;

/// The longest key, as in memcached.
const MAX_KEY: usize = 250;

/// memcached treats an exptime above 30 days as an absolute Unix time.
const RELATIVE_EXPTIME_LIMIT: i64 = 60 * 60 * 24 * 30;

#[derive(Debug, Clone, Copy)]
pub(super) struct Protocol;

impl server::Protocol for Protocol {
    type Session = Session;

    const TOO_MANY_CONNECTIONS: &'static [u8] = b"SERVER_ERROR Too many open connections\r\n";

    fn session(self, node: Arc<Node>, _peer: SocketAddr) -> Session {
        Session { node, skip: 0 }
    }
}

#[derive(Debug)]
pub(super) struct Session {
    node: Arc<Node>,
    /// Bytes of a refused data block still to be skipped.
    skip: usize,
}

/// What answering one request line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Answered; the line and `data` bytes after it are used.
    Done { data: usize },
    /// The data block the line announces has not fully arrived.
    NeedData,
    /// Answered with an error; the `data` bytes after the line are to be skipped as they come.
    Skip { data: usize },
    /// Answered (or `quit`); close the connection.
    Close,
}

/// What a command runs with.
struct Ctx<'a> {
    node: &'a Node,
    out: &'a mut Vec<u8>,
    /// Unix milliseconds, read once per batch.
    now: u64,
}

impl Ctx<'_> {
    fn line(&mut self, text: &[u8]) {
        self.out.extend_from_slice(text);
        self.out.extend_from_slice(b"\r\n");
    }
}

impl connection::Session for Session {
    fn serve(&mut self, input: &mut BytesMut, output: &mut Vec<u8>) -> Flow {
        let mut ctx = Ctx {
            node: &self.node,
            out: output,
            now: now_ms(),
        };
        let mut commands = 0;
        // One clock read per command, as in the RESP session.
        let mut last = Instant::now();
        let flow = loop {
            if ctx.out.len() > OUTPUT_HIGH_WATER {
                break Flow::OutputFull;
            }
            if self.skip > 0 {
                let skipped = self.skip.min(input.len());
                input.advance(skipped);
                self.skip -= skipped;
                if self.skip > 0 {
                    break Flow::NeedInput;
                }
            }
            let Some(newline) = input.iter().position(|&byte| byte == b'\n') else {
                if input.len() > MAX_LINE {
                    ctx.line(b"CLIENT_ERROR line too long");
                    break Flow::Close;
                }
                break Flow::NeedInput;
            };
            let line = input[..newline]
                .strip_suffix(b"\r")
                .unwrap_or(&input[..newline]);
            let step = execute(&mut ctx, line, &input[newline + 1..]);
            if step != Step::NeedData {
                commands += 1;
                let done = Instant::now();
                ctx.node
                    .metrics
                    .command_duration
                    .observe((done - last).as_secs_f64());
                last = done;
            }
            match step {
                Step::Done { data } => input.advance(newline + 1 + data),
                Step::NeedData => break Flow::NeedInput,
                Step::Skip { data } => {
                    input.advance(newline + 1);
                    self.skip = data;
                }
                Step::Close => break Flow::Close,
            }
        };
        self.node
            .clients
            .commands
            .fetch_add(commands, Ordering::Relaxed);
        flow
    }
}

fn execute(ctx: &mut Ctx<'_>, line: &[u8], after: &[u8]) -> Step {
    let mut tokens = line.split(|&byte| byte == b' ').filter(|t| !t.is_empty());
    let Some(command) = tokens.next() else {
        ctx.line(b"ERROR");
        return Step::Done { data: 0 };
    };
    if command.len() == 2 && command[0] == b'm' {
        meta::execute(ctx, command, tokens, after)
    } else {
        text::execute(ctx, command, tokens, after)
    }
}

/// The data block of `len` bytes at the start of `after`, if it has arrived, with the number of
/// bytes it takes (its CRLF included); `Err` with that number if it is not followed by CRLF.
fn data_block(after: &[u8], len: usize) -> Option<Result<(&[u8], usize), usize>> {
    let total = len.checked_add(2)?;
    if after.len() < total {
        return None;
    }
    if &after[len..total] != b"\r\n" {
        return Some(Err(total));
    }
    Some(Ok((&after[..len], total)))
}

/// A key memcached would accept: 1 to 250 bytes. (Request lines are split on spaces, so a key
/// holds none.) protocol.txt asks clients for no control characters, but memcached does not
/// check, and clients rely on that: memcaslap's keys start with eight 0x10 bytes.
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY
}

/// An exptime as memcached reads it, as the store's expiry: 0 never, negative already expired,
/// up to 30 days relative, beyond that an absolute Unix time.
fn expiry(exptime: i64, now: u64) -> Option<u64> {
    match exptime {
        0 => None,
        // Any time in the past will do.
        ..0 => Some(1),
        RELATIVE_EXPTIME_LIMIT.. => Some(exptime.saturating_mul(1000) as u64),
        relative => Some(now + relative as u64 * 1000),
    }
}

/// A decimal number token.
fn number<T: std::str::FromStr>(token: &[u8]) -> Option<T> {
    std::str::from_utf8(token).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptimes_follow_memcached() {
        let now = 1_700_000_000_000;
        assert_eq!(expiry(0, now), None);
        assert!(expiry(-1, now).is_some_and(|at| at <= now));
        assert_eq!(expiry(10, now), Some(now + 10_000));
        assert_eq!(expiry(1_800_000_000, now), Some(1_800_000_000_000));
    }

    #[test]
    fn keys() {
        assert!(valid_key(b"user:42"));
        assert!(!valid_key(b""));
        assert!(!valid_key(&[b'k'; 251]));
        assert!(
            valid_key(b"\x10\x10a\x01b\x7f"),
            "control characters, as in memcached"
        );
    }
}
