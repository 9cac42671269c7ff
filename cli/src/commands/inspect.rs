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
        match engine.inspect_image(r) {
            Ok(img) => out.push(serde_json::to_value(img)?),
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
