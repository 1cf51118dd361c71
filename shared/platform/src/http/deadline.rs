//! A whole request body must arrive within `HTTP_BODY_READ_TIMEOUT_MS` of the request's
//! start: a client sending a byte every few seconds gets a 408 problem and its connection
//! closed, instead of holding a handler and a connection for as long as it likes. The same
//! deadline bounds any streamed body ([`within`]), such as a backend's answer a proxy passes on.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use super::Problem;

/// The error a body reports once its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive within {0:?}")]
pub struct BodyTimedOut(Duration);

/// `body`, failing with [`BodyTimedOut`] unless it has been read whole within `limit` from now.
pub fn within<B>(body: B, limit: Duration) -> Body
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    Body::new(Deadline { inner: body, sleep: Box::pin(tokio::time::sleep(limit)), limit })
}

/// The problem for a body that could not be read: 408 (connection closed) when its
/// deadline passed, else `otherwise` (too large, or the client went away).
pub fn body_problem(error: &(dyn std::error::Error + 'static), otherwise: Problem) -> Problem {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
            return Problem::new(StatusCode::REQUEST_TIMEOUT, Some(timed_out.to_string()));
        }
        cause = error.source();
    }
    otherwise
}

struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(axum::Error::new)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
