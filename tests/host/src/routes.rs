//! Route matching as Spin does it: an exact route beats any wildcard, and among trailing
//! wildcards (`/prefix/...`) the longest prefix wins. A wildcard `/prefix/...` matches `/prefix`
//! itself and everything below it. When two triggers declare the same route, the later one wins.

use anyhow::{Result, ensure};

use crate::manifest::HttpRoute;

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    /// The prefix without the trailing `/...`; empty for the catch-all `/...`.
    Prefix(String),
}

#[derive(Debug, Clone)]
struct Entry {
    pattern: Pattern,
    /// The route as written in the manifest.
    raw: String,
    component: String,
}

#[derive(Debug, Clone)]
pub struct Router {
    entries: Vec<Entry>,
}

/// What a request path matched, with the values Spin passes in its `spin-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// `spin-matched-route` and `spin-raw-component-route`: the route as declared.
    pub raw_route: String,
    /// `spin-component-route`: the route without its trailing `/...`.
    pub component_route: String,
    /// `spin-path-info`: the part of the path below the wildcard prefix.
    pub path_info: String,
}

impl Router {
    pub fn build(routes: &[HttpRoute]) -> Result<Self> {
        let mut entries: Vec<Entry> = Vec::new();
        for route in routes {
            let raw = route.route.clone();
            ensure!(
                raw.starts_with('/'),
                "route {raw:?} of component {:?} must start with '/'",
                route.component
            );
            ensure!(
                !raw.split('/').any(|segment| segment.starts_with(':')),
                "route {raw:?}: named wildcards are not supported by the test host"
            );
            let pattern = match raw.strip_suffix("/...") {
                Some(prefix) => Pattern::Prefix(prefix.to_owned()),
                None => {
                    ensure!(
                        !raw.contains("..."),
                        "route {raw:?}: '...' is only allowed as a final segment"
                    );
                    Pattern::Exact(raw.trim_end_matches('/').to_owned())
                }
            };
            entries.retain(|existing| existing.raw != raw);
            entries.push(Entry {
                pattern,
                raw,
                component: route.component.clone(),
            });
        }
        Ok(Self { entries })
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let trimmed = path.trim_end_matches('/');
        let exact = self.entries.iter().find(|entry| match &entry.pattern {
            Pattern::Exact(route) => route == trimmed,
            Pattern::Prefix(_) => false,
        });
        if let Some(entry) = exact {
            return Some(RouteMatch {
                component: entry.component.clone(),
                raw_route: entry.raw.clone(),
                component_route: entry.raw.clone(),
                path_info: String::new(),
            });
        }

        let (entry, prefix) = self
            .entries
            .iter()
            .filter_map(|entry| match &entry.pattern {
                Pattern::Prefix(prefix) if prefix_matches(prefix, path) => Some((entry, prefix)),
                _ => None,
            })
            .max_by_key(|(_, prefix)| prefix.len())?;
        Some(RouteMatch {
            component: entry.component.clone(),
            raw_route: entry.raw.clone(),
            component_route: prefix.clone(),
            path_info: path[prefix.len()..].to_owned(),
        })
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let routes: Vec<HttpRoute> = routes
            .iter()
            .map(|(route, component)| HttpRoute {
                route: route.to_string(),
                component: component.to_string(),
            })
            .collect();
        Router::build(&routes).unwrap()
    }

    #[test]
    fn exact_routes_beat_wildcards() {
        let router = router(&[("/auth/...", "wild"), ("/auth/login", "login")]);
        assert_eq!(router.route("/auth/login").unwrap().component, "login");
        assert_eq!(router.route("/auth/other").unwrap().component, "wild");
    }

    #[test]
    fn the_longest_wildcard_prefix_wins() {
        let router = router(&[("/...", "all"), ("/catalog/...", "catalog")]);
        let matched = router.route("/catalog/items/7").unwrap();
        assert_eq!(matched.component, "catalog");
        assert_eq!(matched.path_info, "/items/7");
        assert_eq!(matched.component_route, "/catalog");
        assert_eq!(matched.raw_route, "/catalog/...");
        assert_eq!(router.route("/catalogue").unwrap().component, "all");
        assert_eq!(router.route("/").unwrap().component, "all");
    }

    #[test]
    fn a_wildcard_matches_its_own_prefix() {
        let router = router(&[("/logs/...", "logs")]);
        assert_eq!(router.route("/logs").unwrap().path_info, "");
        assert_eq!(router.route("/logs/").unwrap().path_info, "/");
        assert!(router.route("/log").is_none());
    }

    #[test]
    fn unmatched_paths_have_no_route() {
        let router = router(&[("/health", "health")]);
        assert!(router.route("/healthz").is_none());
        assert!(router.route("/health/x").is_none());
    }

    #[test]
    fn a_later_duplicate_route_replaces_an_earlier_one() {
        let router = router(&[("/x", "first"), ("/x", "second")]);
        assert_eq!(router.route("/x").unwrap().component, "second");
    }
}
