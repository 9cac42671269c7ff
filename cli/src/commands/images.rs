//! `kiln images` and the `kiln image` group (ls, inspect, history, tag, rm,
//! save, load, import, prune), as docker has them.

use std::process::ExitCode;

use anyhow::Result;

use kiln_engine::images::ImageFilter;

use super::display::{engine, human_size, print_table, since, warnings_only};
use crate::Globals;

/// Flags of `kiln images` / `kiln image ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show only images whose name matches this repository (or repo:tag).
    reference: Option<String>,
    /// Filter output (`reference=PATTERN`, `dangling=true|false`, `label=KEY[=VALUE]`,
    /// `before=IMAGE`, `since=IMAGE`); may be repeated.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output (full image IDs).
    #[arg(long)]
    no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Show all images (kiln keeps no intermediate images: same as without).
    #[arg(short, long)]
    all: bool,
    /// Output format: "table" (default), "json" (one object per line) or a
    /// Go-template subset such as "{{.Repository}}:{{.Tag}}".
    #[arg(long)]
    format: Option<String>,
}

/// `kiln image SUBCOMMAND`.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: Group,
}

#[derive(Debug, clap::Subcommand)]
enum Group {
    /// List images.
    #[command(alias = "list")]
    Ls(Args),
    /// Show low-level information on images.
    Inspect(super::inspect::Args),
    /// Show the history of an image.
    History(super::history::Args),
    /// Create a name TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(super::tag::Args),
    /// Remove one or more images.
    #[command(alias = "remove")]
    Rm(super::rmi::Args),
    /// Save one or more images to a tar archive.
    Save(super::save::Args),
    /// Load images from a tar archive.
    Load(super::load::Args),
    /// Import a root file system tarball or directory as an image.
    Import(super::import::Args),
    /// Remove unused data (same as `kiln system prune`).
    Prune(super::system::PruneArgs),
}

/// Runs `kiln image SUBCOMMAND`.
pub fn run_group(g: &Globals, args: GroupArgs) -> Result<ExitCode> {
    match args.command {
        Group::Ls(a) => run(g, a),
        Group::Inspect(a) => super::inspect::run_images(g, a),
        Group::History(a) => super::history::run(g, a),
        Group::Tag(a) => super::tag::run(g, a),
        Group::Rm(a) => super::rmi::run(g, a),
        Group::Save(a) => super::save::run(g, a),
        Group::Load(a) => super::load::run(g, a),
        Group::Import(a) => super::import::run(g, a),
        Group::Prune(a) => super::system::run_prune(g, a),
    }
}

/// Lists images as docker does.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let _ = args.all;
    let mut filter = ImageFilter::parse_cli(&args.filters)?;
    filter.reference.extend(args.reference.clone());
    let images = engine(g).list_images(&filter, &warnings_only())?;
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut seen_ids = std::collections::HashSet::new();
    for img in images {
        let id = if args.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        if args.quiet {
            if seen_ids.insert(id.clone()) {
                println!("{id}");
            }
            continue;
        }
        let created_s = if img.created == 0 {
            "N/A".to_string()
        } else {
            since(img.created)
        };
        json_rows.push(serde_json::json!({
            "Containers": "N/A",
            "CreatedAt": img.created_at.clone().unwrap_or_default(),
            "CreatedSince": created_s,
            "Digest": img.manifest_digest.to_string(),
            "ID": id,
            "Repository": img.repository,
            "SharedSize": "N/A",
            "Size": human_size(img.size),
            "Tag": img.tag,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(img.size),
        }));
        let mut row = vec![img.repository.clone(), img.tag.clone()];
        if args.digests {
            row.push(img.manifest_digest.to_string());
        }
        row.extend([id, created_s, human_size(img.size)]);
        rows.push(row);
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let mut header = vec!["REPOSITORY", "TAG"];
            if args.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            print_table(&header, &rows);
        }
        Some("json") | Some("{{json .}}") => {
            for r in json_rows {
                println!("{r}");
            }
        }
        Some(t) => {
            for r in json_rows {
                println!("{}", super::display::template(t, &r)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
