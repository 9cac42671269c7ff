//! Layers: creating them from trees (diff), applying them to trees (unpack),
//! and their compression.

pub mod apply;
pub mod compress;
pub mod create;
pub(crate) mod fsops;
pub(crate) mod literals;

pub use apply::{apply_layer, ApplyMode, ApplyOptions, ApplyStats, DevicePolicy};
pub use compress::{CompressOptions, Compression, Encoder};
pub use create::{write_entry_tar, write_layer, DiffSource, LayerInfo, TarOptions};

/// Deterministic pseudo-random bytes for the layer tests, without a crate.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
