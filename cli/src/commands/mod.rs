//! One module per `kiln` command (or command group).

pub mod build;
pub mod completion;
pub mod debug;
pub mod lint;
pub mod parse;
pub mod display;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod rmi;
pub mod save;
pub mod system;
pub mod tag;
pub mod container;
pub mod exec;
pub mod logs;
pub mod ps;
pub mod rm;
pub mod run;
pub mod stop;
pub mod version;
pub mod volume;
