//! `kiln system service`: serve the Docker Engine API on a unix socket.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::Globals;

/// Flags of `kiln system service`.
///
/// SECURITY: the API socket is root-equivalent. Whoever can write to it can run any program
/// as the service's user (root for a root service) with any host path mounted, as with
/// dockerd's socket. It is created with mode 0660: give its group only to users you would
/// give root.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The socket is root-equivalent: whoever can write to it can run anything as \
                  the service's user (mode 0660: owner and group). Clients: \
                  DOCKER_HOST=unix:///path/to/kiln.sock docker ..."
)]
pub struct ServiceArgs {
    /// Exit after this many seconds with no open connection (0: never).
    #[arg(short, long, value_name = "SECONDS", default_value_t = 5)]
    time: u64,
    /// Where to listen: unix:///path (default /run/kiln/kiln.sock as root,
    /// $XDG_RUNTIME_DIR/kiln/kiln.sock otherwise).
    #[arg(value_name = "URI")]
    uri: Option<String>,
}

/// Runs `kiln system service`.
pub fn run(g: &Globals, args: ServiceArgs) -> Result<ExitCode> {
    let options = kiln_api::ServeOptions::from_args(args.uri.as_deref(), args.time)?;
    let socket = options.socket.clone();
    let engine = Arc::new(kiln_engine::Engine::new(&g.root));
    kiln_api::server::run(options, engine)
        .with_context(|| format!("serving the Engine API on {}", socket.display()))?;
    Ok(ExitCode::SUCCESS)
}
