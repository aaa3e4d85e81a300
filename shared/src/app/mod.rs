//! What every component runs for every request: the web layer's context and reply around the
//! component's route table, with the access log and domain events recorded on the way out.
//! This is the one place the layers meet (platform, web, domain), so it sits above them all.

mod access_log;

use crate::platform::host;
use crate::web::{ApiError, Reply, Request, RequestCtx, Response};

/// Runs `handler` for `request` and makes its outcome a response: errors become problem
/// documents (internal causes are logged with the request id, not returned), the request id is
/// echoed, and the access entry and domain events are recorded.
pub async fn serve(
    component: &'static str,
    request: Request,
    handler: impl AsyncFnOnce(&mut RequestCtx) -> Result<Reply, ApiError>,
) -> Response {
    let mut ctx = RequestCtx::new(component, request);
    let reply = match handler(&mut ctx).await {
        Ok(reply) => reply,
        Err(error) => {
            if let Some(cause) = error.logged_cause() {
                access_log::failure(&ctx, error.status(), &cause);
            }
            Reply::problem(&error, &ctx.path)
        }
    };
    let request_id = ctx.request_id.clone();
    access_log::finish(ctx, reply.status());
    host::settle().await;
    reply.into_response(&request_id)
}
