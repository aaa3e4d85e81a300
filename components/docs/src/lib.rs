//! `GET /docs`: an interactive reference of the API for `/openapi.json` (Swagger UI), with "Try
//! it out" against this origin. Every file is compiled in, Swagger UI from npm's
//! swagger-ui-dist at a pinned version (build.rs checks each file against assets/SHA256SUMS),
//! so the page loads nothing from anywhere else, works offline, and runs under a
//! Content-Security-Policy that allows this origin only and no inline code.

use bytes::Bytes;
use http::StatusCode;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use shared::{ApiError, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

/// Swagger UI's folder, under assets/ and under /docs/. The version in every URL of its files
/// is what lets browsers keep them for good; an upgrade gets new URLs.
macro_rules! swagger_ui {
    () => {
        "swagger-ui-5.35.0"
    };
}

/// Scripts, styles, images and requests from this origin only; no inline code, no `eval`, no
/// plugins, forms or framing. `data:` images are swagger-ui.css's icons.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const PNG: &str = "image/png";
const TEXT: &str = "text/plain; charset=utf-8";

/// A file of the page.
struct Asset {
    /// Its path under /docs/.
    name: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    /// Our own files keep their URL when they change, so browsers revalidate them with this;
    /// Swagger UI's (`None`) never change under theirs.
    etag: Option<&'static str>,
}

/// One of our own files in page/, with the ETag build.rs computed for it.
macro_rules! own {
    ($file:literal, $content_type:expr, $etag:literal) => {
        Asset {
            name: $file,
            body: include_bytes!(concat!("../page/", $file)),
            content_type: $content_type,
            etag: Some(env!($etag)),
        }
    };
}

/// One of Swagger UI's files, as fetched from npm (build.rs checked its SHA-256).
macro_rules! vendored {
    ($file:literal, $content_type:expr) => {
        Asset {
            name: concat!(swagger_ui!(), "/", $file),
            body: include_bytes!(concat!("../assets/", swagger_ui!(), "/", $file)),
            content_type: $content_type,
            etag: None,
        }
    };
}

static PAGE: Asset = own!("index.html", HTML, "ETAG_INDEX_HTML");

static FILES: &[Asset] = &[
    own!("docs-init.js", JS, "ETAG_DOCS_INIT_JS"),
    own!("docs.css", CSS, "ETAG_DOCS_CSS"),
    vendored!("swagger-ui-bundle.js", JS),
    vendored!("swagger-ui.css", CSS),
    vendored!("favicon-32x32.png", PNG),
    vendored!("favicon-16x16.png", PNG),
    // Apache-2.0 asks for the licence and NOTICE to go along; the bundle names its notices file.
    vendored!("LICENSE", TEXT),
    vendored!("NOTICE", TEXT),
    vendored!("swagger-ui-bundle.js.LICENSE.txt", TEXT),
];

// HEAD too, unlike the API: static files are what link checkers and `curl -I` ask about (Spin
// sends the headers of the same reply without its body).
shared::routes! {
    GET "/docs" => page,
    HEAD "/docs" => page,
    GET "/docs/{file}" => own_file,
    HEAD "/docs/{file}" => own_file,
    GET "/docs/{folder}/{file}" => vendored_file,
    HEAD "/docs/{folder}/{file}" => vendored_file,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("docs", request, dispatch).await
}

async fn page(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    Ok(PAGE.reply(ctx))
}

async fn own_file(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    file(ctx, params.get("file"))
}

async fn vendored_file(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    file(
        ctx,
        &format!("{}/{}", params.get("folder"), params.get("file")),
    )
}

fn file(ctx: &RequestCtx, name: &str) -> Result<Reply, ApiError> {
    FILES
        .iter()
        .find(|asset| asset.name == name)
        .map(|asset| asset.reply(ctx))
        .ok_or_else(|| ApiError::not_found("no such file of the API reference"))
}

impl Asset {
    /// The file, or 304 when the client's copy is current; with its caching and security
    /// headers either way.
    fn reply(&self, ctx: &RequestCtx) -> Reply {
        let reply = match self.etag {
            Some(etag) if is_current(ctx, etag) => Reply::empty(StatusCode::NOT_MODIFIED),
            _ => Reply::bytes(
                StatusCode::OK,
                self.content_type,
                Bytes::from_static(self.body),
            ),
        };
        let reply = match self.etag {
            Some(etag) => reply.header(CACHE_CONTROL, "no-cache").header(ETAG, etag),
            None => reply.header(CACHE_CONTROL, "public, max-age=31536000, immutable"),
        };
        reply
            .header(CONTENT_SECURITY_POLICY, CSP)
            .header(X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(REFERRER_POLICY, "no-referrer")
    }
}

/// Whether an `If-None-Match` of the request names `etag` (or is `*`), compared weakly as
/// RFC 9110 section 13.1.2 asks.
fn is_current(ctx: &RequestCtx, etag: &str) -> bool {
    ctx.headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}
