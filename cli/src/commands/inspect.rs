//! `kiln inspect` / `kiln image inspect`: docker's JSON view of images.

use std::process::ExitCode;

use super::display::{engine, template};
use crate::Globals;
use anyhow::Result;

/// Flags of `kiln image inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images (names or IDs).
    #[arg(required = true)]
    images: Vec<String>,
    /// Format the output: "json" (default) or a Go-template subset such as "{{.Id}}".
    #[arg(short, long)]
    format: Option<String>,
}

/// Prints the inspect objects (a JSON array, as docker does).
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let engine = engine(g);
    let mut out = Vec::new();
    let mut failed = false;
    for r in &args.images {
        // As `docker inspect`: a name that is no image may be a container or a network.
        let found = match engine.inspect_image(r) {
            Err(not_image) if not_image.is_not_found() => match engine.inspect_container(r) {
                Ok(c) => Ok(serde_json::to_value(c)?),
                Err(e) if e.is_not_found() => match engine.network_inspect(r) {
                    Ok(n) => Ok(serde_json::to_value(n)?),
                    Err(_) => Err(not_image),
                },
                Err(e) => Err(e),
            },
            Ok(img) => Ok(serde_json::to_value(img)?),
            Err(e) => Err(e),
        };
        match found {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    match args.format.as_deref() {
        None | Some("json") => println!("{}", serde_json::to_string_pretty(&out)?),
        Some(t) => {
            for v in &out {
                println!("{}", template(t, v)?);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
