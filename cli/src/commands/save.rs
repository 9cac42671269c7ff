//! `kiln save [-o FILE] [--format oci|docker] IMAGE...`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};
use kiln_engine::images::ArchiveFormat;

use super::display::engine;
use crate::Globals;

/// Flags of `kiln save`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images (names or IDs).
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to a file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Archive format: docker (docker save's docker-archive, the default) or
    /// oci (an OCI image layout in a tar).
    #[arg(long, default_value = "docker", value_parser = ["docker", "oci"])]
    format: String,
}

/// Writes the archive (to a temp file renamed into place, when `-o` is given).
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let engine = engine(g);
    let format = match args.format.as_str() {
        "oci" => ArchiveFormat::Oci,
        _ => ArchiveFormat::Docker,
    };
    match &args.output {
        Some(path) => engine.save_images_to(&args.images, format, path)?,
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            engine.save_images(&args.images, format, out)?.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
