//! HTTP plumbing every service uses: request ids, problem+json errors,
//! extractors that answer bad input with 4xx, tracing and metrics layers, and
//! the server with its standard routes (`/health/*`, `/metrics`).

mod connections;
mod deadline;
mod extract;
mod layers;
mod paging;
mod problem;
mod request_id;
mod server;

pub use deadline::{BodyTimedOut, body_problem, within as body_within};
pub use extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
pub use layers::{TRACE_ID_HEADER, inject_trace_context, standard_layers, standard_layers_with};
pub use paging::Page;
pub use problem::{FieldError, Problem};
pub use request_id::{REQUEST_ID_HEADER, RequestId};
pub use server::{Server, ServerBuilder};
