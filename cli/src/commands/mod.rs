//! One module per `kiln` command (or command group).

pub mod build;
pub mod completion;
pub mod container;
pub mod debug;
pub mod display;
pub mod exec;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod lint;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod parse;
pub mod ps;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod stop;
pub mod system;
pub mod tag;
pub mod version;
pub mod volume;
