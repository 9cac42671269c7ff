//! `kiln rmi [-f] IMAGE...`: removes names; an image whose last name goes is
//! deleted and its unreferenced blobs and snapshots reclaimed.

use std::process::ExitCode;

use anyhow::Result;

use super::display::engine;
use crate::Globals;

/// Flags of `kiln rmi`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images (names or IDs).
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an ID even when several names point at it.
    #[arg(short, long)]
    force: bool,
    /// Accepted for docker compatibility (kiln keeps no untagged parents).
    #[arg(long)]
    no_prune: bool,
}

/// Removes the images, printing docker's Untagged/Deleted lines.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let engine = engine(g);
    let mut failed = false;
    for r in &args.images {
        match engine.remove_image(r, args.force, !args.no_prune) {
            Ok(removed) => {
                for n in removed.untagged {
                    println!("Untagged: {n}");
                }
                if let Some(id) = removed.deleted {
                    println!("Deleted: {id}");
                }
            }
            Err(e) => {
                eprintln!("Error response from kiln: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
