//! Sessions: `GET /auth/authenticate` says who a bearer token belongs to and until when its
//! session lasts; `POST /auth/logout` ends the session (or, with `?everywhere=true`, every
//! session of the user), after which the token is refused everywhere.

use serde_json::json;
use shared::domain::auth::{authenticate, sessions};
use shared::platform::{db, time};
use shared::{ApiError, Event, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

shared::routes! {
    GET "/auth/authenticate" => who_am_i,
    POST "/auth/logout" => logout,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("authenticate", request, dispatch).await
}

async fn who_am_i(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let expires_at =
        time::from_unix_millis(user.session_expires_at * 1000).map(time::format_rfc3339);
    Ok(Reply::ok(&json!({
        "user": {
            "id": user.id,
            "username": user.username,
            "role": user.role,
            "created_at": user.created_at,
        },
        "session": {
            "expires_at": expires_at,
            "expires_in": (user.session_expires_at - time::unix_seconds()).max(0),
        },
    }))
    .header(http::header::CACHE_CONTROL, "no-store"))
}

async fn logout(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let everywhere = query.optional("everywhere", |value| match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    });
    let everywhere = query.finish(everywhere)?.unwrap_or(false);
    let user = authenticate(ctx).await?;
    let db = db::connect().await?;
    let ended = if everywhere {
        sessions::end_all_of_user(&db, &user.id).await?
    } else {
        sessions::end(&db, std::slice::from_ref(&user.jti)).await?;
        1
    };
    ctx.event(Event::info(
        "logout",
        json!({ "user_id": user.id, "everywhere": everywhere, "sessions_ended": ended }),
    ));
    Ok(Reply::no_content())
}
