//! One way to route: each component declares its routes as a table of method, path template
//! and handler with [`routes!`](crate::routes). The table answers 404 for a path it does not
//! know and 405 (with `Allow`) for a known path with another method, the same way everywhere,
//! and records the matched template for the access log.
//!
//! A path matches a template segment by segment (`{name}` matches any one segment, which the
//! handler reads from [`PathParams`]); empty segments are ignored, so `/logs/` is `/logs`.
//! When several templates match, the one with the most literal segments wins, so
//! `/messages/unread` is not taken for `/messages/{id}`.

use http::Method;

use crate::web::error::ApiError;
use crate::web::input::percent_decode;
use crate::web::request::RequestCtx;

/// A route: an HTTP method and a path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
}

/// The values of a template's `{name}` segments, percent-decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// The value of `{name}`; the template guarantees it is there.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    }
}

/// The path's segments, percent-decoded (an undecodable one is kept as sent).
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode(segment).unwrap_or_else(|| segment.to_owned()))
        .collect()
}

/// How well `template` matches `segments`: the number of literal segments, with the captured
/// parameters; `None` when it does not match.
fn match_template(template: &'static str, segments: &[String]) -> Option<(usize, PathParams)> {
    let parts: Vec<&'static str> = template.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut literals = 0;
    let mut params = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name, segment.clone())),
            None if part == segment => literals += 1,
            None => return None,
        }
    }
    Some((literals, PathParams(params)))
}

/// The index in `routes` of the route for `method` and `path`, with its parameters; the
/// matched template is returned too (also for a 405), for the access log.
pub fn find(
    routes: &[Route],
    method: &Method,
    path: &str,
) -> (Option<&'static str>, Result<(usize, PathParams), ApiError>) {
    let segments = segments(path);
    let mut best: Option<(usize, &'static str, PathParams)> = None;
    for route in routes {
        if let Some((literals, params)) = match_template(route.template, &segments)
            && best.as_ref().is_none_or(|(most, _, _)| literals > *most)
        {
            best = Some((literals, route.template, params));
        }
    }
    let Some((_, template, params)) = best else {
        return (None, Err(ApiError::not_found("no such route")));
    };
    let same_path = || {
        routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.template == template)
    };
    match same_path().find(|(_, route)| route.method == method.as_str()) {
        Some((index, _)) => (Some(template), Ok((index, params))),
        None => {
            let mut allowed: Vec<Method> = Vec::new();
            for (_, route) in same_path() {
                let method = Method::from_bytes(route.method.as_bytes()).expect("a valid method");
                if !allowed.contains(&method) {
                    allowed.push(method);
                }
            }
            (Some(template), Err(ApiError::MethodNotAllowed { allowed }))
        }
    }
}

/// [`find`] for a request, recording the matched template on it.
pub fn resolve(routes: &[Route], ctx: &mut RequestCtx) -> Result<(usize, PathParams), ApiError> {
    let (template, found) = find(routes, &ctx.method, &ctx.path);
    ctx.route = template;
    found
}

/// Declares a component's routes: `METHOD "template" => handler`, where each handler is
/// `async fn(&mut RequestCtx, PathParams) -> Result<Reply, ApiError>`. Defines `ROUTES` (the
/// table) and `dispatch` (runs the matching handler).
#[macro_export]
macro_rules! routes {
    ($($method:ident $template:literal => $handler:path),+ $(,)?) => {
        /// Every route of this component: method and path template.
        pub const ROUTES: &[$crate::web::router::Route] = &[
            $($crate::web::router::Route { method: stringify!($method), template: $template },)+
        ];

        /// Runs the handler of the route that matches the request (404 or 405 otherwise).
        pub async fn dispatch(
            ctx: &mut $crate::web::RequestCtx,
        ) -> Result<$crate::web::Reply, $crate::web::ApiError> {
            let (index, params) = $crate::web::router::resolve(ROUTES, ctx)?;
            let mut position = 0usize;
            $(
                if index == position {
                    return $handler(ctx, params).await;
                }
                position += 1;
            )+
            unreachable!("resolve returned index {index} of {position} routes")
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[Route] = &[
        Route {
            method: "GET",
            template: "/messages",
        },
        Route {
            method: "POST",
            template: "/messages",
        },
        Route {
            method: "GET",
            template: "/messages/unread",
        },
        Route {
            method: "POST",
            template: "/messages/read",
        },
        Route {
            method: "GET",
            template: "/messages/{id}",
        },
    ];

    fn index(method: Method, path: &str) -> Result<(usize, PathParams), ApiError> {
        find(ROUTES, &method, path).1
    }

    #[test]
    fn literal_segments_beat_parameters() {
        assert_eq!(index(Method::GET, "/messages/unread").unwrap().0, 2);
        let (position, params) = index(Method::GET, "/messages/a%20b").unwrap();
        assert_eq!(position, 4);
        assert_eq!(params.get("id"), "a b");
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow() {
        let Err(ApiError::MethodNotAllowed { allowed }) = index(Method::GET, "/messages/read")
        else {
            panic!("expected 405");
        };
        assert_eq!(allowed, vec![Method::POST]);
        let (template, _) = find(ROUTES, &Method::DELETE, "/messages");
        assert_eq!(template, Some("/messages"));
        let Err(ApiError::MethodNotAllowed { allowed }) = index(Method::DELETE, "/messages") else {
            panic!("expected 405");
        };
        assert_eq!(allowed, vec![Method::GET, Method::POST]);
    }

    #[test]
    fn unknown_paths_are_404_and_empty_segments_are_ignored() {
        assert!(matches!(
            index(Method::GET, "/messages/a/b"),
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(index(Method::GET, "//messages/").unwrap().0, 0);
    }
}
