//! The web layer: one request's context, routing, input validation, pagination cursors,
//! replies, and the one error type mapped to HTTP. It uses the platform layer and knows nothing
//! of the app's domain.

pub mod client;
pub mod cursor;
pub mod error;
pub mod input;
pub mod reply;
pub mod request;
pub mod router;

pub use error::{ApiError, FieldError};
pub use reply::{Reply, Response};
pub use request::{Request, RequestCtx};
pub use router::PathParams;
