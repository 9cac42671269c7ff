//! kiln's OCI distribution client.
//!
//! - [`reference`]: docker's reference grammar and normalization.
//! - [`auth`]: challenges, docker's credential file and helpers, bearer tokens.
//! - [`Client`]: transport (TLS or plain HTTP, retries, auth), [`Client::pull`],
//!   [`Client::push`], [`Client::push_blob_stream`], [`Client::resolve`], [`Client::login`].
//! - [`sink`]: the traits the store implements so blobs stream in and out, verified.

pub mod auth;
mod client;
pub mod config;
pub mod digest;
mod error;
pub mod manifest;
pub mod progress;
mod pull;
mod push;
mod push_stream;
pub mod reference;
pub mod sink;

pub use client::Client;
pub use config::ClientConfig;
pub use digest::Digest;
pub use error::{Error, Result, StoreError};
pub use manifest::{ManifestBytes, Platform};
pub use progress::{BlobEvent, ProgressFn};
pub use pull::{BlobInfo, PulledImage};
pub use reference::{Reference, ReferenceError};
pub use sink::{BlobSink, BlobSource, BlobWriter};
