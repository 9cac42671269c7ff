//! The `kiln` binary: docker-shaped commands over kiln's crates.
//!
//! Each command lives in its own module under `commands/`; this file only
//! declares the command line and dispatches. Library crates return typed
//! errors; here they become `anyhow` errors with context, printed once.

mod commands;
mod progress;
mod render;

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
    /// Build an image from a Dockerfile.
    Build(Box<commands::build::Args>),
    /// Show kiln's version and build information.
    Version(commands::version::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(commands::completion::Args),
    /// Parse a Dockerfile and print its syntax tree (outline, --json or --dump).
    Parse(commands::parse::Args),
    /// Check a Dockerfile against BuildKit's build rules (as `docker build --check`).
    Lint(commands::lint::Args),
    /// Look inside kiln's stages (e.g. `kiln debug expand WORD`).
    Debug(commands::debug::Args),
    /// List images.
    Images(commands::images::Args),
    /// Manage images.
    Image(commands::images::GroupArgs),
    /// Show low-level information on images.
    Inspect(commands::inspect::Args),
    /// Show the history of an image.
    History(commands::history::Args),
    /// Create a name TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(commands::tag::Args),
    /// Remove one or more images.
    Rmi(commands::rmi::Args),
    /// Save one or more images to a tar archive (docker-archive or OCI layout).
    Save(commands::save::Args),
    /// Load images from a tar archive or standard input.
    Load(commands::load::Args),
    /// Import a root file system tarball or directory as an image.
    Import(commands::import::Args),
    /// Manage kiln's store: disk usage, pruning, consistency check.
    System(commands::system::Args),
    /// The supervisor of one started container (run by kiln itself, never by hand).
    #[command(name = "container-supervisor", hide = true)]
    ContainerSupervisor {
        /// The container's id.
        id: String,
    },
    /// Create a container without starting it (the flags of `run`).
    Create(Box<commands::run::Args>),
    /// Start created or stopped containers.
    Start(commands::start::StartArgs),
    /// Stop and start containers again.
    Restart(commands::start::RestartArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(commands::start::WaitArgs),
    /// Attach this terminal to a running container.
    Attach(commands::start::AttachArgs),
    /// Run a command in a new container.
    Run(Box<commands::run::Args>),
    /// List containers.
    Ps(commands::ps::Args),
    /// Print a container's output.
    Logs(commands::logs::Args),
    /// Stop running containers (stop signal, then SIGKILL).
    Stop(commands::stop::StopArgs),
    /// Send a signal to running containers.
    Kill(commands::stop::KillArgs),
    /// Remove containers.
    Rm(commands::rm::Args),
    /// Run a command in a running container.
    Exec(commands::exec::Args),
    /// Manage named volumes.
    Volume(commands::volume::Args),
    /// Manage networks.
    Network(commands::network::Args),
    /// The helper of one user-defined network (run by kiln itself, never by hand).
    #[command(name = "network-helper", hide = true)]
    NetworkHelper {
        /// The network's id.
        id: String,
    },
    /// Copy files between a container and the host.
    Cp(commands::cp::Args),
    /// Show a running container's processes.
    Top(commands::top::Args),
    /// Show containers' resource use.
    Stats(commands::stats::Args),
    /// Log in to a registry (checks the credentials, then stores them as docker does).
    Login(commands::login::Args),
    /// Log out from a registry (removes its stored credentials).
    Logout(commands::logout::Args),
    /// Download an image from a registry.
    Pull(commands::pull::Args),
    /// Upload an image to a registry.
    Push(commands::push::Args),
    /// Define and run multi-container applications (compose files).
    Compose(commands::compose::Args),
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
        root: cli.root.unwrap_or_else(kiln_engine::default_root),
        debug: cli.debug,
    };
    let result = match cli.command {
        Command::Build(args) => commands::build::run(&globals, *args),
        Command::Version(args) => commands::version::run(&globals, args),
        Command::Completion(args) => commands::completion::run(args),
        Command::Parse(args) => commands::parse::run(args),
        Command::Debug(args) => commands::debug::run(args),
        Command::Lint(args) => commands::lint::run(args),
        Command::Images(args) => commands::images::run(&globals, args),
        Command::Image(args) => commands::images::run_group(&globals, args),
        Command::Inspect(args) => commands::inspect::run(&globals, args),
        Command::History(args) => commands::history::run(&globals, args),
        Command::Tag(args) => commands::tag::run(&globals, args),
        Command::Rmi(args) => commands::rmi::run(&globals, args),
        Command::Save(args) => commands::save::run(&globals, args),
        Command::Load(args) => commands::load::run(&globals, args),
        Command::Import(args) => commands::import::run(&globals, args),
        Command::System(args) => commands::system::run(&globals, args),
        Command::ContainerSupervisor { id } => {
            kiln_engine::containers::supervise(&globals.root, &id)
        }
        Command::Create(args) => commands::start::create(&globals, *args),
        Command::Start(args) => commands::start::start(&globals, args),
        Command::Restart(args) => commands::start::restart(&globals, args),
        Command::Wait(args) => commands::start::wait(&globals, args),
        Command::Attach(args) => commands::start::attach(&globals, args),
        Command::Run(args) => commands::run::run(&globals, *args),
        Command::Ps(args) => commands::ps::run(&globals, args),
        Command::Logs(args) => commands::logs::run(&globals, args),
        Command::Stop(args) => commands::stop::stop(&globals, args),
        Command::Kill(args) => commands::stop::kill(&globals, args),
        Command::Rm(args) => commands::rm::run(&globals, args),
        Command::Exec(args) => commands::exec::run(&globals, args),
        Command::Volume(args) => commands::volume::run(&globals, args),
        Command::Network(args) => commands::network::run(&globals, args),
        Command::NetworkHelper { id } => kiln_engine::networks::helper::run(&globals.root, &id),
        Command::Cp(args) => commands::cp::run(&globals, args),
        Command::Top(args) => commands::top::run(&globals, args),
        Command::Stats(args) => commands::stats::run(&globals, args),
        Command::Login(args) => commands::login::run(args),
        Command::Logout(args) => commands::logout::run(args),
        Command::Pull(args) => commands::pull::run(&globals, args),
        Command::Push(args) => commands::push::run(&globals, args),
        Command::Compose(args) => commands::compose::run(&globals, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kiln: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
