//! One module per `kiln` command (or command group).

pub mod completion;
pub mod debug;
pub mod lint;
pub mod parse;
pub mod version;
