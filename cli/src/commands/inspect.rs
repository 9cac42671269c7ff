//! `kiln inspect` / `kiln image inspect`: docker's JSON view of images.

use std::process::ExitCode;

use anyhow::Result;
use kiln_cache::store::Image;

use super::display::{store, template};
use crate::Globals;

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

/// Docker's `image inspect` object for an image.
pub fn inspect_json(img: &Image) -> Result<serde_json::Value> {
    let cfg: serde_json::Value = serde_json::from_slice(&img.config_raw)?;
    let layers: Vec<String> = img.diff_ids.iter().map(|d| d.to_string()).collect();
    Ok(serde_json::json!({
        "Id": img.id.to_string(),
        "RepoTags": img.names,
        "RepoDigests": [],
        "Parent": "",
        "Comment": cfg.get("comment").cloned().unwrap_or_else(|| "".into()),
        "Created": cfg.get("created").cloned().unwrap_or_else(|| "".into()),
        "DockerVersion": cfg.get("docker_version").cloned().unwrap_or_else(|| "".into()),
        "Author": cfg.get("author").cloned().unwrap_or_else(|| "".into()),
        "Config": cfg.get("config").cloned().unwrap_or(serde_json::Value::Null),
        "Architecture": cfg.get("architecture").cloned().unwrap_or_else(|| "".into()),
        "Variant": cfg.get("variant").cloned(),
        "Os": cfg.get("os").cloned().unwrap_or_else(|| "".into()),
        "Size": img.size()?,
        "RootFS": {"Type": "layers", "Layers": layers},
        "Descriptor": {
            "mediaType": img.manifest.media_type,
            "digest": img.manifest_digest.to_string(),
            "size": img.manifest_size,
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }))
}

/// Prints the inspect objects (a JSON array, as docker does).
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let store = store(g)?;
    let mut out = Vec::new();
    let mut failed = false;
    for r in &args.images {
        match store.image(r) {
            Ok(img) => out.push(inspect_json(&img)?),
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
