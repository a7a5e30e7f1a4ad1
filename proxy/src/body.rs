//! The body types that flow through the proxy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::Sleep;

/// Any error a body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends, to a client or a backend: buffered bytes from the cache, or a
/// stream passed through.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes a streamed body, such as a backend's or a client's.
pub fn stream<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Fails a body whose source goes silent for longer than `idle` while it is waited for, so a
/// backend that stalls mid-response does not hold the client forever. The timer is armed only
/// when the source has nothing ready: a body already buffered (most small responses) costs no
/// timer at all. Size hints pass through, so a relayed body keeps its exact length.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` counts the current wait (it is re-armed after each frame).
    armed: bool,
}

impl<B> IdleTimeout<B> {
    pub fn new(idle: Duration, inner: B) -> Self {
        Self {
            inner,
            idle,
            deadline: None,
            armed: false,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        if !this.armed {
            let at = tokio::time::Instant::now() + this.idle;
            match &mut this.deadline {
                Some(deadline) => deadline.as_mut().reset(at),
                None => this.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            this.armed = true;
        }
        match this
            .deadline
            .as_mut()
            .map(|deadline| deadline.as_mut().poll(cx))
        {
            Some(Poll::Ready(())) => {
                Poll::Ready(Some(Err("the backend went silent mid-body".into())))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
