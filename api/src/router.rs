//! The API version prefix and the route table.
//!
//! A route is a method, a path pattern and a handler function. Pattern segments are literals,
//! `{name}` (one segment) or `{name*}` (one or more segments, for image names such as
//! `localhost:5000/a/b:1`). At most one `{name*}` per pattern: the literals before it match
//! from the start and those after it from the end, as moby's router does with `{name:.*}`.
//! Routes are tried in table order, so a literal route (`GET /images/json`) goes before a
//! pattern that would also match it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response};

use crate::error::ApiError;
use crate::query::Query;
use crate::server::Tracker;
use crate::Body;

/// What a handler returns.
pub type HandlerResult = Result<Response<Body>, ApiError>;
/// A handler's future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
/// A route's handler: an async fn of the call, boxed (`|c| Box::pin(my_handler(c))`).
pub type Handler = fn(Call) -> HandlerFuture;

/// One request as a handler sees it.
pub struct Call {
    /// The engine the service runs on.
    pub engine: Arc<kiln_engine::Engine>,
    /// Method, URI, headers and extensions (the upgrade handle lives there).
    pub parts: Parts,
    /// The path parameters, by pattern name, percent-decoded.
    pub params: Vec<(String, String)>,
    /// The decoded query string.
    pub query: Query,
    /// The request body, unread.
    pub body: Incoming,
    /// The API version the client asked for (the path prefix; [`crate::API_VERSION`] without one).
    pub version: ApiVersion,
    /// Counts a hijacked stream as an open connection, for the idle timeout.
    pub(crate) tracker: Arc<Tracker>,
}

impl Call {
    /// The path parameter `name` (empty when the route has none by that name).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// A request header as text, when present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An API version `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// The major number (1).
    pub major: u32,
    /// The minor number.
    pub minor: u32,
}

impl ApiVersion {
    /// The newest version kiln speaks.
    pub const MAX: ApiVersion = ApiVersion {
        major: 1,
        minor: 41,
    };
    /// The oldest version kiln accepts.
    pub const MIN: ApiVersion = ApiVersion {
        major: 1,
        minor: 24,
    };

    /// Parses `1.41`; a missing minor is 0, as in moby's version comparison.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let mut parts = text.splitn(2, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            None | Some("") => 0,
            Some(m) => m.parse().ok()?,
        };
        Some(ApiVersion { major, minor })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Splits an optional `/v1.NN` prefix off `path`: the version asked for and the rest.
/// A version outside [`ApiVersion::MIN`]..=[`ApiVersion::MAX`] is docker's 400.
pub fn strip_version(path: &str) -> Result<(ApiVersion, &str), ApiError> {
    let Some(after) = path.strip_prefix("/v") else {
        return Ok((ApiVersion::MAX, path));
    };
    let end = after.find('/').unwrap_or(after.len());
    let text = &after[..end];
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok((ApiVersion::MAX, path));
    }
    let rest = if end == after.len() {
        "/"
    } else {
        &after[end..]
    };
    let version = ApiVersion::parse(text)
        .ok_or_else(|| ApiError::bad_request(format!("invalid API version: {text}")))?;
    if version > ApiVersion::MAX {
        return Err(ApiError::bad_request(format!(
            "client version {text} is too new. Maximum supported API version is {}",
            ApiVersion::MAX
        )));
    }
    if version < ApiVersion::MIN {
        return Err(ApiError::bad_request(format!(
            "client version {text} is too old. Minimum supported API version is {}, \
             please upgrade your client to a newer version",
            ApiVersion::MIN
        )));
    }
    Ok((version, rest))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One(String),
}

struct Route {
    method: Method,
    before: Vec<Segment>,
    /// The `{name*}` segment's name, when the pattern has one.
    many: Option<String>,
    after: Vec<Segment>,
    handler: Handler,
}

/// The route table.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// The answer for a path no route matches, as dockerd's.
pub fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

impl Router {
    /// An empty table.
    pub fn new() -> Router {
        Router::default()
    }

    /// The table with every route kiln serves.
    pub fn api() -> Router {
        let mut router = Router::new();
        crate::system::routes(&mut router);
        crate::containers::routes(&mut router);
        crate::containers_extra::routes(&mut router);
        crate::exec::routes(&mut router);
        crate::events::routes(&mut router);
        crate::images::routes(&mut router);
        crate::build::routes(&mut router);
        crate::volumes::routes(&mut router);
        crate::networks::routes(&mut router);
        crate::auth::routes(&mut router);
        crate::registry::routes(&mut router);
        router
    }

    /// Adds a route. Panics on a pattern with two `{name*}` segments (a programming error).
    pub fn route(&mut self, method: Method, pattern: &str, handler: Handler) -> &mut Router {
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut many = None;
        for seg in pattern.split('/').filter(|s| !s.is_empty()) {
            let seg = if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                match name.strip_suffix('*') {
                    Some(name) => {
                        assert!(many.is_none(), "two {{name*}} segments in {pattern}");
                        many = Some(name.to_string());
                        continue;
                    }
                    None => Segment::One(name.to_string()),
                }
            } else {
                Segment::Literal(seg.to_string())
            };
            if many.is_some() {
                after.push(seg);
            } else {
                before.push(seg);
            }
        }
        self.routes.push(Route {
            method,
            before,
            many,
            after,
            handler,
        });
        self
    }

    /// The handler and path parameters for `method` on `path` (version prefix already
    /// stripped). `HEAD` falls back to a `GET` route. No match is docker's 404.
    pub fn find(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<(Handler, Vec<(String, String)>), ApiError> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let exact = self.find_for(method, &segments);
        if exact.is_some() || method != Method::HEAD {
            return exact.ok_or_else(page_not_found);
        }
        self.find_for(&Method::GET, &segments)
            .ok_or_else(page_not_found)
    }

    fn find_for(
        &self,
        method: &Method,
        segments: &[&str],
    ) -> Option<(Handler, Vec<(String, String)>)> {
        self.routes
            .iter()
            .filter(|r| r.method == *method)
            .find_map(|r| r.matches(segments).map(|params| (r.handler, params)))
    }
}

impl Route {
    fn matches(&self, segments: &[&str]) -> Option<Vec<(String, String)>> {
        let fixed = self.before.len() + self.after.len();
        let fits = match self.many {
            Some(_) => segments.len() > fixed,
            None => segments.len() == fixed,
        };
        if !fits {
            return None;
        }
        let mut params = Vec::new();
        let tail = &segments[segments.len() - self.after.len()..];
        for (pattern, seg) in self
            .before
            .iter()
            .zip(segments)
            .chain(self.after.iter().zip(tail))
        {
            match pattern {
                Segment::Literal(lit) => {
                    if lit != seg {
                        return None;
                    }
                }
                Segment::One(name) => {
                    params.push((name.clone(), percent_decode(seg)));
                }
            }
        }
        if let Some(name) = &self.many {
            let middle = &segments[self.before.len()..segments.len() - self.after.len()];
            params.push((name.clone(), percent_decode(&middle.join("/"))));
        }
        Some(params)
    }
}

/// Decodes `%XX` escapes in a path (a `+` stays a `+`: only queries use it for a space).
/// Malformed escapes are kept as they are; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler_a(_: Call) -> HandlerFuture {
        Box::pin(async { Err(ApiError::internal("a")) })
    }
    fn handler_b(_: Call) -> HandlerFuture {
        Box::pin(async { Err(ApiError::internal("b")) })
    }

    fn table() -> Router {
        let mut r = Router::new();
        r.route(Method::GET, "/images/json", handler_a)
            .route(Method::GET, "/images/{name*}/json", handler_b)
            .route(Method::POST, "/images/{name*}/tag", handler_b)
            .route(Method::DELETE, "/images/{name*}", handler_b)
            .route(Method::POST, "/containers/{id}/start", handler_a)
            .route(Method::GET, "/_ping", handler_a);
        r
    }

    fn params(r: &Router, m: Method, p: &str) -> Option<Vec<(String, String)>> {
        r.find(&m, p).ok().map(|(_, p)| p)
    }

    #[test]
    fn names_with_slashes_match_from_the_end() {
        let r = table();
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(params(&r, Method::GET, "/images/json"), Some(vec![]));
        assert_eq!(
            params(&r, Method::GET, "/images/localhost:5000/a/b:1/json"),
            Some(p("name", "localhost:5000/a/b:1"))
        );
        assert_eq!(
            params(&r, Method::GET, "/images/json/json"),
            Some(p("name", "json"))
        );
        assert_eq!(
            params(&r, Method::DELETE, "/images/localhost:5000/a/b:1"),
            Some(p("name", "localhost:5000/a/b:1"))
        );
        assert_eq!(
            params(&r, Method::POST, "/images/a%2Fb/tag"),
            Some(p("name", "a/b"))
        );
        assert_eq!(
            params(&r, Method::POST, "/containers/abc/start"),
            Some(p("id", "abc"))
        );
        assert_eq!(params(&r, Method::POST, "/containers/a/b/start"), None);
        // Empty segments are ignored, as in a cleaned path.
        assert_eq!(params(&r, Method::GET, "/images//json"), Some(vec![]));
        assert_eq!(params(&r, Method::GET, "/nope"), None);
        assert_eq!(params(&r, Method::PUT, "/_ping"), None);
        // HEAD falls back to GET.
        assert_eq!(params(&r, Method::HEAD, "/_ping"), Some(vec![]));
        let err = r.find(&Method::GET, "/nope").err().unwrap();
        assert_eq!(err.status, hyper::StatusCode::NOT_FOUND);
        assert_eq!(err.message, "page not found");
    }

    #[test]
    fn version_prefixes() {
        let v = |minor| ApiVersion { major: 1, minor };
        assert_eq!(strip_version("/_ping").unwrap(), (v(41), "/_ping"));
        assert_eq!(strip_version("/v1.41/info").unwrap(), (v(41), "/info"));
        assert_eq!(strip_version("/v1.24/info").unwrap(), (v(24), "/info"));
        assert_eq!(strip_version("/v1.30").unwrap(), (v(30), "/"));
        assert_eq!(strip_version("/volumes").unwrap(), (v(41), "/volumes"));
        assert_eq!(
            strip_version("/v1.99/info").unwrap_err().message,
            "client version 1.99 is too new. Maximum supported API version is 1.41"
        );
        assert_eq!(strip_version("/v2/info").unwrap_err().status, 400);
        assert_eq!(
            strip_version("/v1.12/info").unwrap_err().message,
            "client version 1.12 is too old. Minimum supported API version is 1.24, \
             please upgrade your client to a newer version"
        );
        assert_eq!(strip_version("/v1..2/x").unwrap_err().status, 400);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%3a1"), "a/b:1");
        assert_eq!(percent_decode("a+b"), "a+b");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%2"), "%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("x%41"), "xA");
    }
}
