//! Finds requests that carry both Content-Length and Transfer-Encoding, so that they can be
//! refused (400) rather than processed by their chunked framing.
//!
//! hyper frames such a request by Transfer-Encoding and closes the connection after it, as
//! RFC 9112 §6.3 allows, but drops the Content-Length header while parsing, so the request that
//! reaches the proxy looks like any chunked one. [`FramingGuard`] wraps the client's socket and
//! reads the same bytes hyper reads: it parses each request head with httparse (the parser hyper
//! uses) and follows each body's framing to the next head, without copying unless a head or a
//! chunk-size line is split across reads. It only watches: every byte goes to hyper unchanged.
//! When it cannot follow the stream (anything hyper itself will refuse, or lines longer than
//! its limits) it stops looking, and the request is handled as hyper frames it.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's default limit on the number of request headers; more and hyper answers 431.
const MAX_HEADERS: usize = 100;
/// A chunk-size line (with extensions) or a trailer line longer than this ends the watch.
const MAX_LINE: usize = 4096;
const NONE: u64 = u64::MAX;

/// Which request of a connection, counting from 0, had both Content-Length and
/// Transfer-Encoding. Only the first counts: hyper closes the connection after that one.
#[derive(Debug, Clone)]
pub struct AmbiguousRequest(Arc<AtomicU64>);

impl AmbiguousRequest {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(NONE)))
    }

    /// Whether request number `ordinal` of the connection had both headers. By the time hyper
    /// hands a request to the service, the guard has read (and so parsed) its head.
    pub fn is(&self, ordinal: u64) -> bool {
        self.0.load(Ordering::Acquire) == ordinal
    }

    fn mark(&self, ordinal: u64) {
        let _ = self
            .0
            .compare_exchange(NONE, ordinal, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A request extension: this request came with both Content-Length and Transfer-Encoding.
#[derive(Debug, Clone, Copy)]
pub struct AmbiguousFraming;

/// Where in the byte stream the guard is.
#[derive(Debug)]
enum Position {
    Head,
    /// Bytes of a Content-Length body still to come.
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    /// Lost or done: the remaining bytes are hyper's business alone.
    Stopped,
}

/// A client socket whose request heads are checked for ambiguous framing as hyper reads them.
#[derive(Debug)]
pub struct FramingGuard<S> {
    inner: S,
    position: Position,
    /// The start of a head or line that did not end within one read.
    carry: Vec<u8>,
    max_head: usize,
    /// Requests whose heads have been read.
    heads: u64,
    ambiguous: AmbiguousRequest,
}

impl<S> FramingGuard<S> {
    /// Wraps `inner`; heads longer than `max_head` bytes end the watch (hyper answers 431).
    pub fn new(inner: S, max_head: usize) -> (Self, AmbiguousRequest) {
        let ambiguous = AmbiguousRequest::new();
        let guard = Self {
            inner,
            position: Position::Head,
            carry: Vec::new(),
            max_head,
            heads: 0,
            ambiguous: ambiguous.clone(),
        };
        (guard, ambiguous)
    }

    /// Follows `bytes`, just read from the client.
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match self.position {
                Position::Stopped => return,
                Position::Body(remaining) | Position::ChunkData(remaining) => {
                    let used = remaining.min(bytes.len() as u64);
                    let left = remaining - used;
                    self.position = match (&self.position, left) {
                        (Position::Body(_), 0) => Position::Head,
                        (Position::Body(_), _) => Position::Body(left),
                        (_, 0) => Position::ChunkEnd,
                        (_, _) => Position::ChunkData(left),
                    };
                    used as usize
                }
                Position::Head => self.observe_head(bytes),
                Position::ChunkSize | Position::ChunkEnd | Position::Trailers => {
                    self.observe_line(bytes)
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// Consumes (part of) a request head; returns how many of `bytes` it used.
    fn observe_head(&mut self, bytes: &[u8]) -> usize {
        let carried = self.carry.len();
        if carried > 0 {
            self.carry.extend_from_slice(bytes);
        }
        let head = if carried > 0 { &self.carry[..] } else { bytes };
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        let (next, length) = match request.parse_with_uninit_headers(head, &mut headers) {
            Ok(httparse::Status::Complete(length)) => (framing(&request), length),
            Ok(httparse::Status::Partial) if head.len() <= self.max_head => {
                if carried == 0 {
                    self.carry.extend_from_slice(bytes);
                }
                return bytes.len();
            }
            // Too long or malformed: hyper refuses it and closes.
            _ => (Framing::Lost, head.len()),
        };
        self.carry.clear();
        let ordinal = self.heads;
        self.heads += 1;
        self.position = match next {
            Framing::Length(0) => Position::Head,
            Framing::Length(length) => Position::Body(length),
            Framing::Chunked => Position::ChunkSize,
            Framing::Ambiguous => {
                self.ambiguous.mark(ordinal);
                Position::Stopped
            }
            Framing::Lost => Position::Stopped,
        };
        length - carried
    }

    /// Consumes (part of) a chunk-size line, the CRLF after chunk data, or a trailer line.
    fn observe_line(&mut self, bytes: &[u8]) -> usize {
        let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
            self.carry.extend_from_slice(bytes);
            if self.carry.len() > MAX_LINE {
                self.position = Position::Stopped;
            }
            return bytes.len();
        };
        let used = newline + 1;
        let line = if self.carry.is_empty() {
            &bytes[..used]
        } else {
            self.carry.extend_from_slice(&bytes[..used]);
            &self.carry[..]
        };
        let empty = line == b"\r\n";
        self.position = match self.position {
            Position::ChunkSize => match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((_, 0))) => Position::Trailers,
                Ok(httparse::Status::Complete((_, size))) => Position::ChunkData(size),
                _ => Position::Stopped,
            },
            Position::ChunkEnd if empty => Position::ChunkSize,
            Position::Trailers if empty => Position::Head,
            Position::Trailers => Position::Trailers,
            _ => Position::Stopped,
        };
        self.carry.clear();
        used
    }
}

/// How a request's body is delimited (RFC 9112 §6.3).
enum Framing {
    Length(u64),
    Chunked,
    /// Both Content-Length and Transfer-Encoding.
    Ambiguous,
    /// Framing hyper refuses (an invalid or conflicting length, a Transfer-Encoding that does
    /// not end in chunked or on HTTP/1.0).
    Lost,
}

fn framing(request: &httparse::Request<'_, '_>) -> Framing {
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(header.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (parsed, length) {
                (None, _) => return Framing::Lost,
                (Some(new), Some(old)) if new != old => return Framing::Lost,
                (new, _) => length = new,
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last line names the final coding.
            transfer_encoding = Some(header.value);
        }
    }
    match (transfer_encoding, length) {
        (Some(_), Some(_)) => Framing::Ambiguous,
        (Some(_), None) if request.version != Some(1) => Framing::Lost,
        (Some(codings), None) => {
            let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default();
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked
            } else {
                Framing::Lost
            }
        }
        (None, length) => Framing::Length(length.unwrap_or(0)),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !matches!(this.position, Position::Stopped)
        {
            this.observe(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` to a guard in pieces of `piece` bytes; returns the requests counted and
    /// the ambiguous one, if any.
    fn watch(stream: &[u8], piece: usize) -> (u64, Option<u64>) {
        let (mut guard, ambiguous) = FramingGuard::new((), 32 * 1024);
        for part in stream.chunks(piece) {
            guard.observe(part);
        }
        let flagged = (0..guard.heads).find(|&n| ambiguous.is(n));
        (guard.heads, flagged)
    }

    const KEEP_ALIVE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nGET /\r\n10\r\nContent-Length: \r\n0\r\nTrailer: t\r\n\r\n\
GET /last HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn follows_bodies_to_the_next_head_whatever_the_read_sizes() {
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(watch(KEEP_ALIVE, piece), (4, None), "pieces of {piece}");
        }
    }

    #[test]
    fn finds_content_length_with_transfer_encoding_in_either_order_and_on_any_request() {
        let cl_first = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let te_first = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
content-length: 4\r\n\r\n0\r\n\r\n";
        for piece in [1, 5, 4096] {
            assert_eq!(watch(cl_first, piece), (1, Some(0)));
            assert_eq!(watch(te_first, piece), (1, Some(0)));
            let third = [KEEP_ALIVE, cl_first].concat();
            assert_eq!(watch(&third, piece), (5, Some(4)), "pieces of {piece}");
        }
    }

    #[test]
    fn a_smuggled_head_inside_a_body_is_not_taken_for_a_request() {
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let stream = [
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat();
        assert_eq!(watch(&stream, 3), (1, None));
    }

    #[test]
    fn stops_watching_what_hyper_refuses() {
        for refused in [
            &b"GET / HTTP/1.1\r\nHost x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let (mut guard, _) = FramingGuard::new((), 32 * 1024);
            guard.observe(refused);
            assert!(matches!(guard.position, Position::Stopped), "{refused:?}");
        }
    }
}
