//! `kiln tag SOURCE_IMAGE TARGET_IMAGE`.

use std::process::ExitCode;

use anyhow::Result;

use super::display::engine;
use crate::Globals;

/// Flags of `kiln tag`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to name (name or ID).
    source: String,
    /// The new name, `repo[:tag]`.
    target: String,
}

/// Adds the name.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    engine(g).tag_image(&args.source, &args.target)?;
    Ok(ExitCode::SUCCESS)
}
