//! One module per `kiln` command (or command group).

pub mod completion;
pub mod login;
pub mod logout;
pub mod version;
