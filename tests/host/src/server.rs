//! The HTTP front: routes each request as Spin does, prepares it the way Spin's HTTP trigger
//! does (absolute URI, `spin-*` headers, hop-by-hop headers dropped) and hands it to the
//! component's `ProxyHandler`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::handler::{ErrorCode, ProxyHandler};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;

use crate::routes::{RouteMatch, Router};
use crate::runtime::ComponentState;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Requests processed at once across the app; more wait for a permit (`ProxyHandler` itself
/// has no back-pressure).
const MAX_IN_FLIGHT: usize = 1_024;

pub struct Server {
    pub router: Router,
    pub handlers: std::collections::HashMap<String, ProxyHandler<ComponentState>>,
    pub app_name: String,
    in_flight: Semaphore,
}

impl Server {
    pub fn new(
        router: Router,
        handlers: std::collections::HashMap<String, ProxyHandler<ComponentState>>,
        app_name: String,
    ) -> Self {
        Self {
            router,
            handlers,
            app_name,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        loop {
            let (stream, client) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(request, client).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, mut request: Request<Incoming>, client: SocketAddr) -> Response<Body> {
        // Transport-level only; Spin strips it before the component sees the request.
        request.headers_mut().remove(http::header::CONNECTION);
        let path = request.uri().path().to_owned();

        if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
            return match well_known {
                "health" => text(StatusCode::OK, "OK"),
                "info" => text(
                    StatusCode::OK,
                    &format!(
                        "{{\"name\":{:?},\"host\":\"spin-test-host\"}}",
                        self.app_name
                    ),
                ),
                _ => empty(StatusCode::NOT_FOUND),
            };
        }

        let Some(route) = self.router.route(&path) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let Some(handler) = self.handlers.get(&route.component) else {
            return empty(StatusCode::NOT_FOUND);
        };

        let request = match prepare_request(request, &route, client) {
            Ok(request) => request,
            Err(error) => {
                eprintln!("[{}] cannot prepare request: {error:#}", route.component);
                return empty(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };

        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("semaphore is never closed");
        match handler.handle((), request).await {
            Ok(response) => response.map(|body| {
                body.map_err(|error| std::io::Error::other(error.to_string()))
                    .boxed_unsync()
            }),
            Err(error) => {
                eprintln!("[{}] request failed: {error:?}", route.component);
                empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// Gives the request an absolute URI and the `spin-*` headers, as Spin's HTTP trigger does.
fn prepare_request(
    request: Request<Incoming>,
    route: &RouteMatch,
    client: SocketAddr,
) -> Result<wasmtime_wasi_http::handler::Request> {
    let (mut parts, body) = request.into_parts();

    let host = match parts.headers.get(HOST) {
        Some(value) => value.to_str().context("'Host' header is not valid UTF-8")?,
        None => "localhost",
    }
    .to_owned();
    let authority: http::uri::Authority = match parts.uri.authority() {
        Some(authority) => authority.clone(),
        None => host
            .parse()
            .context("'Host' header is not a valid authority")?,
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query.as_str())
        .build()?;

    // Spin rebuilds the header map from UTF-8 header values and refuses anything else.
    for value in parts.headers.values() {
        value
            .to_str()
            .context("a header value is not valid UTF-8")?;
    }
    let spin_headers = [
        ("spin-path-info", route.path_info.clone()),
        ("spin-full-url", format!("http://{host}{path_and_query}")),
        ("spin-matched-route", route.raw_route.clone()),
        ("spin-base-path", "/".to_owned()),
        ("spin-raw-component-route", route.raw_route.clone()),
        ("spin-component-route", route.component_route.clone()),
        ("spin-client-addr", client.to_string()),
    ];
    for (name, value) in spin_headers {
        parts.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).context("spin header value")?,
        );
    }

    let body = body
        .map_err(|error| ErrorCode::P3(P3ErrorCode::InternalError(Some(error.to_string()))))
        .boxed_unsync();
    Ok(Request::from_parts(parts, body))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::copy_from_slice(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}
