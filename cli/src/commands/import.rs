//! `kiln import [-m MSG] [-c INSTRUCTION]... ROOTFS.tar|DIR|- NAME`: a root file system as a one-layer image
//! (also the offline way to get a base image: `tar -C rootfs -c . | kiln import - busybox`).

use std::process::ExitCode;

use anyhow::Result;
use kiln_engine::images::RootfsSource;

use super::display::engine;
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
    /// Apply a Dockerfile instruction to the image's config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
}

/// Imports and prints the image ID, as docker does.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let source = if args.source == "-" {
        RootfsSource::Stream {
            reader: Box::new(std::io::stdin()),
            name: "-".into(),
        }
    } else {
        let p = std::path::PathBuf::from(&args.source);
        if p.is_dir() {
            RootfsSource::Directory(p)
        } else {
            RootfsSource::File(p)
        }
    };
    let id = engine(g).import_rootfs_with_changes(
        source,
        &args.name,
        args.message.clone(),
        &args.changes,
    )?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
