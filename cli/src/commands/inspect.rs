//! `kiln inspect` / `kiln image inspect`: docker's JSON view of containers, images and
//! networks (`kiln inspect` looks for a container of that name first, then an image, then a
//! network, as `docker inspect` does).

use std::process::ExitCode;

use super::display::{engine, template};
use crate::Globals;
use anyhow::Result;

/// Flags of `kiln image inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Containers, images or networks (names or IDs).
    #[arg(required = true)]
    images: Vec<String>,
    /// Only this kind of object: container, image or network.
    #[arg(long = "type", value_name = "TYPE", value_parser = ["container", "image", "network"])]
    kind: Option<String>,
    /// Format the output: "json" (default) or a Go-template subset such as "{{.Id}}".
    #[arg(short, long)]
    format: Option<String>,
}

/// `kiln image inspect`: images only.
pub fn run_images(g: &Globals, mut args: Args) -> Result<ExitCode> {
    args.kind = Some("image".into());
    run(g, args)
}

/// Prints the inspect objects (a JSON array, as docker does).
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let engine = engine(g);
    let mut out = Vec::new();
    let mut failed = false;
    for r in &args.images {
        let container = match args.kind.as_deref() {
            None | Some("container") => match engine.inspect_container(r) {
                Ok(c) => Some(Ok(serde_json::to_value(c)?)),
                Err(e) if e.is_not_found() => None,
                Err(e) => Some(Err(e)),
            },
            _ => None,
        };
        let image = match (&container, args.kind.as_deref()) {
            (None, None | Some("image")) => match engine.inspect_image(r) {
                Ok(img) => Some(Ok(serde_json::to_value(img)?)),
                Err(e) if e.is_not_found() && args.kind.is_none() => None,
                Err(e) => Some(Err(e)),
            },
            _ => None,
        };
        let found = match (container.or(image), args.kind.as_deref()) {
            (Some(found), _) => found,
            (None, Some("container")) => Err(kiln_engine::Error::NotFound(format!(
                "No such container: {r}"
            ))),
            (None, _) => match engine.network_inspect(r) {
                Ok(n) => Ok(serde_json::to_value(n)?),
                Err(e) if e.is_not_found() && args.kind.is_none() => {
                    Err(kiln_engine::Error::NotFound(format!("No such object: {r}")))
                }
                Err(e) => Err(e),
            },
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
