//! Sessions: `GET /auth/authenticate` says who a bearer token belongs to and until when its
//! session lasts; `POST /auth/logout` ends the session (or, with `?everywhere=true`, every
//! session of the user), after which the token is refused everywhere.

use http::Method;
use serde_json::json;
use shared::auth::{authenticate, end_sessions, end_user_sessions};
use shared::http::method_not_allowed;
use shared::{ApiError, Event, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("authenticate", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    match ctx.path.as_str() {
        "/auth/authenticate" => {
            ctx.route = Some("/auth/authenticate");
            match ctx.method {
                Method::GET => who_am_i(ctx).await,
                _ => Err(method_not_allowed(&[Method::GET])),
            }
        }
        "/auth/logout" => {
            ctx.route = Some("/auth/logout");
            match ctx.method {
                Method::POST => logout(ctx).await,
                _ => Err(method_not_allowed(&[Method::POST])),
            }
        }
        _ => Err(ApiError::not_found("no such route")),
    }
}

async fn who_am_i(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let expires_at = shared::time::from_unix_millis(user.session_expires_at * 1000)
        .map(shared::time::format_rfc3339);
    Ok(Reply::ok(&json!({
        "user": {
            "id": user.id,
            "username": user.username,
            "role": user.role,
            "created_at": user.created_at,
        },
        "session": {
            "expires_at": expires_at,
            "expires_in": (user.session_expires_at - shared::time::unix_seconds()).max(0),
        },
    }))
    .header(http::header::CACHE_CONTROL, "no-store"))
}

async fn logout(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let everywhere = query.optional("everywhere", |value| match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    });
    let everywhere = query.finish(everywhere)?.unwrap_or(false);
    let user = authenticate(ctx).await?;
    let ended = if everywhere {
        end_user_sessions(ctx, &user.id).await?
    } else {
        end_sessions(ctx, std::slice::from_ref(&user.jti)).await?;
        1
    };
    ctx.event(Event::info(
        "logout",
        json!({ "user_id": user.id, "everywhere": everywhere, "sessions_ended": ended }),
    ));
    Ok(Reply::no_content())
}
