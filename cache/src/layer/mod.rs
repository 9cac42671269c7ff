//! Layers: creating them from trees (diff), applying them to trees (unpack),
//! and their compression.

pub mod apply;
pub mod compress;
pub mod create;
pub(crate) mod fsops;
pub(crate) mod literals;

pub use apply::{apply_layer, ApplyMode, ApplyOptions, ApplyStats, DevicePolicy};
pub use compress::{CompressOptions, Compression, Encoder};
pub use create::{write_layer, DiffSource, LayerInfo, TarOptions};
