//! `kiln rmi [-f] IMAGE...`: removes names; an image whose last name goes is
//! deleted and its unreferenced blobs and snapshots reclaimed.

use std::process::ExitCode;

use anyhow::Result;

use super::display::store;
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
    let store = store(g)?;
    let mut failed = false;
    let mut deleted_any = false;
    for r in &args.images {
        match store.remove_image(r, args.force) {
            Ok((names, deleted)) => {
                for n in names {
                    println!("Untagged: {n}");
                }
                if let Some(id) = deleted {
                    println!("Deleted: {id}");
                    deleted_any = true;
                }
            }
            Err(e) => {
                eprintln!("Error response from kiln: {e}");
                failed = true;
            }
        }
    }
    if deleted_any && !args.no_prune {
        kiln_cache::gc::prune(&store, kiln_cache::gc::PruneOptions::default())?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
