//! `kiln history IMAGE`: the config's history, newest first, as docker shows it.

use std::process::ExitCode;

use anyhow::Result;

use super::display::{ellipsis, human_size, print_table, since, store, template};
use crate::Globals;

/// Flags of `kiln history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image (name or ID).
    image: String,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Print sizes and dates in human readable format (default true).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Output format: "table", "json" or a Go-template subset.
    #[arg(long)]
    format: Option<String>,
}

/// Prints the history.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let store = store(g)?;
    let img = store.image(&args.image)?;
    let layers = img.layers()?;
    let history = img.config.history().clone().unwrap_or_default();
    // Each non-empty history entry owns the next layer, bottom up.
    let mut rows = Vec::new();
    let mut li = 0;
    for h in &history {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = layers.get(li).map(|l| l.1).unwrap_or(0);
            li += 1;
            s
        };
        rows.push((h, size));
    }
    rows.reverse();
    let mut table = Vec::new();
    for (i, (h, size)) in rows.iter().enumerate() {
        let id = if i == 0 {
            if args.no_trunc {
                img.id.to_string()
            } else {
                img.id.short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        if args.quiet {
            println!("{id}");
            continue;
        }
        let created_at = h.created().clone().unwrap_or_default();
        let created = kiln_cache::image::parse_rfc3339(&created_at)
            .map(|t| {
                if args.human {
                    since(t)
                } else {
                    created_at.clone()
                }
            })
            .unwrap_or_else(|| "N/A".into());
        let by = h.created_by().clone().unwrap_or_default();
        let by = if args.no_trunc { by } else { ellipsis(&by, 45) };
        let size = if args.human {
            human_size(*size)
        } else {
            size.to_string()
        };
        let comment = h.comment().clone().unwrap_or_default();
        table.push(serde_json::json!({
            "ID": id, "CreatedAt": created_at, "CreatedSince": created, "CreatedBy": by,
            "Size": size, "Comment": comment,
        }));
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let rows: Vec<Vec<String>> = table
                .iter()
                .map(|r| {
                    ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
                        .iter()
                        .map(|k| r[k].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .collect();
            print_table(
                &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                &rows,
            );
        }
        Some("json") => {
            for r in table {
                println!("{r}");
            }
        }
        Some(t) => {
            for r in table {
                println!("{}", template(t, &r)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
