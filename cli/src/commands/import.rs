//! `kiln import ROOTFS.tar|DIR|- NAME`: a root file system as a one-layer image
//! (also the offline way to get a base image: `tar -C rootfs -c . | kiln import - busybox`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use kiln_cache::transfer::{self, ImportOptions};

use super::display::store;
use crate::Globals;

/// Flags of `kiln import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A tarball (plain, gzip or zstd), a directory, or `-` for a tarball on standard input.
    source: String,
    /// The image name, `repo[:tag]`.
    name: String,
    /// Set the commit message (the history comment).
    #[arg(short, long)]
    message: Option<String>,
}

/// Imports and prints the image ID, as docker does.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let store = store(g)?;
    let opts = ImportOptions {
        comment: args.message.clone(),
        source_date_epoch: None,
        limits: None,
    };
    let (_, id) = if args.source == "-" {
        transfer::import_rootfs_tar(&store, std::io::stdin(), &args.name, "-", &opts)?
    } else {
        let p = std::path::Path::new(&args.source);
        if p.is_dir() {
            transfer::import_rootfs_dir(&store, p, &args.name, &opts)?
        } else {
            let f = std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?;
            transfer::import_rootfs_tar(&store, f, &args.name, &args.source, &opts)
                .with_context(|| format!("import {}", p.display()))?
        }
    };
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
