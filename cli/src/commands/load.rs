//! `kiln load [-i FILE]`: docker-archive or OCI layout (tar or directory),
//! optionally gzip/zstd compressed; the format is detected.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Result};
use kiln_engine::images::ArchiveSource;

use super::display::engine;
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
    let source = match &args.input {
        Some(p) if p.is_dir() => ArchiveSource::Directory(p.clone()),
        Some(p) => ArchiveSource::File(p.clone()),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            ArchiveSource::Stream(Box::new(std::io::stdin()))
        }
    };
    let loaded = engine(g).load_images(source)?;
    if !args.quiet {
        for image in loaded {
            match image.name {
                Some(n) => println!("Loaded image: {n}"),
                None => println!("Loaded image ID: {}", image.id),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
