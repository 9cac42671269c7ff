//! kiln-cache: the local store every other part of kiln stands on.
//!
//! Module map (containerd's split, one module one job):
//! - [`content`]: blobs by sha256 under `ROOT/blobs/sha256/<hex>`, written atomically.
//! - [`metadata`]: image names, the build-cache index, snapshot records and leases (redb).
//! - [`snapshot`]: layers unpacked once each, keyed by chain ID; rootfs layouts for overlayfs.
//! - [`layer`]: layer diff (create) and apply (safe unpack), compression.
//! - [`image`]: OCI and docker manifests, indexes and configs; image names.
//! - [`transfer`]: import and export (OCI layout, docker-archive, rootfs tarballs and directories).
//! - [`gc`]: reachability-based garbage collection and `check` (fsck).
//! - [`store`]: [`Store`], the façade the CLI, solver and runtime use.

#![warn(missing_docs)]

pub mod content;
pub mod digest;
pub mod error;
pub(crate) mod fsutil;
pub mod gc;
pub mod image;
pub mod layer;
pub mod metadata;
pub mod snapshot;
pub mod store;
pub mod transfer;

pub use digest::Digest;
pub use error::{Error, Result};
pub use store::Store;
