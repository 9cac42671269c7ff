//! The `kiln` binary: docker-shaped commands over kiln's crates.
//!
//! Each command lives in its own module under `commands/`; this file only
//! declares the command line and dispatches. Library crates return typed
//! errors; here they become `anyhow` errors with context, printed once.

mod commands;
mod root;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kiln: build, run and push OCI images from Dockerfiles, with no daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true)]
pub struct Cli {
    /// Where all of kiln's state lives (images, layers, build cache, containers).
    /// Defaults to /var/lib/kiln as root, $XDG_DATA_HOME/kiln otherwise.
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    /// Print debug logs to stderr.
    #[arg(long, global = true)]
    debug: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show kiln's version and build information.
    Version(commands::version::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(commands::completion::Args),
    /// Log in to a registry (checks the credentials, then stores them as docker does).
    Login(commands::login::Args),
    /// Log out from a registry (removes its stored credentials).
    Logout(commands::logout::Args),
}

/// What every command may use: the resolved state directory and the debug flag.
pub struct Globals {
    /// The state directory (`--root`), resolved to its default when not given.
    pub root: PathBuf,
    /// Whether `--debug` was given.
    pub debug: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let globals = Globals {
        root: cli.root.unwrap_or_else(root::default_root),
        debug: cli.debug,
    };
    let result = match cli.command {
        Command::Version(args) => commands::version::run(&globals, args),
        Command::Completion(args) => commands::completion::run(args),
        Command::Login(args) => commands::login::run(args),
        Command::Logout(args) => commands::logout::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kiln: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
