//! `kiln rm`

use std::process::ExitCode;

use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Containers (names or ids).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Removes containers (their state, upper layer and cgroups).
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    engine.containers()?;
    let mut code = ExitCode::SUCCESS;
    for c in &args.containers {
        match engine.remove_container(c, args.force) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("kiln: error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
