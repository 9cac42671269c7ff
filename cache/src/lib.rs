//! kiln-cache: the local store every other part of kiln stands on.
//!
//! Module map (containerd's split, one module one job):
//! - [`content`]: blobs by sha256 under `ROOT/blobs/sha256/<hex>`, written atomically.
//! - [`metadata`]: image names, the build-cache index, snapshot records and leases (redb).
//! - [`snapshot`]: layers unpacked once each, keyed by chain ID; rootfs layouts for overlayfs.
//! - [`layer`]: layer diff (create) and apply (safe unpack), compression.
//! - `offthread`: a writer that hands its bytes to a thread of its own (layer blobs).
//! - [`image`]: OCI and docker manifests, indexes and configs; image names.
//! - [`transfer`]: import and export (OCI layout, docker-archive, rootfs tarballs and directories).
//! - [`gc`]: reachability-based garbage collection and `check` (fsck).
//! - [`store`]: [`Store`], the façade the CLI, solver and runtime use.
//!
//! For the runtime: `Store::image(name)` then `Store::prepare_rootfs(&image, id)`
//! gives a [`snapshot::RootfsLayout`] (lower dirs topmost first, a fresh upper
//! and work dir) to mount as overlayfs in the runtime's own mount namespace;
//! `Store::commit_rootfs` keeps a finished step's upper dir as the next layer's
//! snapshot, `Store::remove_rootfs` throws it away.
//!
//! Tests: `cargo test -p kiln-cache` (as root: overlay mounts, devices, owners);
//! hostile archives in `testdata/store/hostile`; fuzzing:
//! `cargo +nightly fuzz run apply_layer --fuzz-dir cache/fuzz`; benchmarks:
//! `cache/bench/bench.sh` (results in `cache/BENCH.md`).

#![warn(missing_docs)]

pub mod content;
pub mod context_mirror;
pub mod digest;
pub mod error;
pub(crate) mod fsutil;
pub mod gc;
pub mod image;
pub mod layer;
pub mod metadata;
pub(crate) mod offthread;
pub mod snapshot;
pub mod store;
pub mod transfer;

pub use digest::Digest;
pub use error::{Error, Result};
pub use store::Store;
