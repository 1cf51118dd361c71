//! HTTP plumbing every service uses: request ids, problem+json errors, extractors that
//! answer bad input with 4xx, the edge every request passes (ids, spans, metrics), and
//! the server with its standard routes (`/health/*`, `/metrics`).

mod connections;
mod deadline;
mod edge;
mod extract;
mod paging;
mod problem;
mod red;
mod request_id;
mod server;
mod serving;

pub use deadline::{BodyTimedOut, body_problem, within as body_within};
pub use edge::{AnswerCheck, PathPolicy, TRACE_ID_HEADER, inject_trace_context};
pub use extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
pub use paging::Page;
pub use problem::{FieldError, Problem};
pub use request_id::{REQUEST_ID_HEADER, RequestId};
pub use server::{Server, ServerBuilder};
