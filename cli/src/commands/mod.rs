//! One module per `kiln` command (or command group).

pub mod completion;
pub mod container;
pub mod exec;
pub mod logs;
pub mod ps;
pub mod rm;
pub mod run;
pub mod stop;
pub mod version;
pub mod volume;
