//! `kiln top`: a running container's processes, as `docker top` prints them.

use std::process::ExitCode;

use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln top`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name or id.
    container: String,
    /// `ps` options (default `-ef`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

/// Prints the table.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let top = Engine::new(&globals.root).container_top(&args.container, &args.ps_args.join(" "))?;
    let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
    super::display::print_table(&titles, &top.processes);
    Ok(ExitCode::SUCCESS)
}
