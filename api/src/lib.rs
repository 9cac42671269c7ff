//! kiln's Docker Engine API service (`kiln system service`): the docker CLIs, compose and the
//! Docker SDKs drive kiln through a unix socket that speaks the Engine API (version 1.41,
//! accepted down to 1.24).
//!
//! This crate is a face over [`kiln_engine::Engine`], as the CLI is: it decodes requests,
//! calls the engine and encodes docker's responses, and holds no logic the CLI lacks.
//!
//! **Security:** the API socket is root-equivalent. Whoever can write to it can run any
//! program as the service's user (root, for a root service) with any bind mount, exactly as
//! with dockerd's socket. [`server::serve`] creates it with mode 0660 and the process's group;
//! give access to it only to users you would give root.
//!
//! Modules, one job each:
//! - [`server`]: the unix socket, connections, idle exit and drain on SIGTERM/SIGINT.
//! - [`router`]: the API version prefix and the route table.
//! - [`query`] and [`body`]: decoding query strings, `filters`, JSON and streamed bodies.
//! - [`stream`]: docker's JSON-lines message streams and stdcopy frames.
//! - [`error`]: docker-shaped error responses and the engine's error kinds as statuses.
//! - [`system`]: `/_ping`, `/version`, `/info`.
//! - [`containers`]: create, start, attach, wait, stop, kill, remove, list, inspect, logs.
//! - [`exec`]: exec instances: create, start (hijacked), inspect, resize.
//! - [`events`]: `/events`, what happened to containers.
//! - [`build`]: `POST /build`, the classic builder's stream.
//! - [`images`]: image list, inspect, history, tag, remove, save, load, prune.
//! - [`volumes`]: volumes and `GET /system/df`.
//! - [`networks`]: `/networks` and a container create's `NetworkingConfig`.
//! - [`auth`]: `X-Registry-Auth`/`X-Registry-Config` and `POST /auth`.
//! - [`registry`]: pull and import (`POST /images/create`) and push.
//! - [`transfer`]: docker's pull and push progress messages, and a transfer's stream.

// /info's JSON literal is larger than serde_json's macro recursion allows by default.
#![recursion_limit = "256"]

pub mod auth;
pub mod body;
pub mod build;
pub mod containers;
pub mod containers_extra;
pub mod error;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
pub mod query;
pub mod registry;
pub mod router;
pub mod server;
pub mod stream;
pub mod system;
pub mod transfer;
pub mod volumes;

pub use error::ApiError;
pub use router::{Call, Router};
pub use server::{serve, ServeOptions};

/// The response body type of every handler: bytes, whole or streamed.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// The API version kiln speaks (20.10's maximum; newer clients negotiate down to it).
pub const API_VERSION: &str = "1.41";
/// The oldest API version accepted in a path prefix (what clients fall back to when a ping
/// has no `Api-Version` header).
pub const MIN_API_VERSION: &str = "1.24";

/// A whole body from bytes.
pub fn full(bytes: impl Into<bytes::Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(bytes::Bytes::new())
}

/// A `200 application/json` response with `value` serialized.
pub fn json_response(
    status: hyper::StatusCode,
    value: &impl serde::Serialize,
) -> hyper::Response<Body> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(full(bytes))
        .unwrap_or_else(|_| hyper::Response::new(empty()))
}
