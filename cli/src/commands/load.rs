//! `kiln load [-i FILE]`: docker-archive or OCI layout (tar or directory),
//! optionally gzip/zstd compressed; the format is detected.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_cache::transfer;

use super::display::store;
use crate::Globals;

/// Flags of `kiln load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read from a tar archive file (or OCI layout directory) instead of standard input.
    #[arg(short, long, value_name = "FILE")]
    input: Option<std::path::PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    quiet: bool,
}

/// Loads the images and prints docker's "Loaded image" lines.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let store = store(g)?;
    let loaded = match &args.input {
        Some(p) if p.is_dir() => transfer::load_oci_dir(&store, p)?,
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?;
            transfer::load(&store, f).with_context(|| format!("load {}", p.display()))?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            transfer::load(&store, std::io::stdin())?
        }
    };
    if !args.quiet {
        for (name, _, id) in loaded {
            match name {
                Some(n) => println!("Loaded image: {n}"),
                None => println!("Loaded image ID: {id}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
