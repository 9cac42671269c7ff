//! `kiln history IMAGE`: the config's history, newest first, as docker shows it.

use std::process::ExitCode;

use anyhow::Result;

use super::display::{ellipsis, engine, human_size, print_table, since, template};
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
    let entries = engine(g).image_history(&args.image)?;
    let mut table = Vec::new();
    for h in &entries {
        let id = match &h.id {
            Some(id) if args.no_trunc => id.to_string(),
            Some(id) => id.short().to_string(),
            None => "<missing>".to_string(),
        };
        if args.quiet {
            println!("{id}");
            continue;
        }
        let created_at = h.created_at.clone().unwrap_or_default();
        let created = h
            .created
            .map(|t| {
                if args.human {
                    since(t)
                } else {
                    created_at.clone()
                }
            })
            .unwrap_or_else(|| "N/A".into());
        let by = if args.no_trunc {
            h.created_by.clone()
        } else {
            ellipsis(&h.created_by, 45)
        };
        let size = if args.human {
            human_size(h.size)
        } else {
            h.size.to_string()
        };
        table.push(serde_json::json!({
            "ID": id, "CreatedAt": created_at, "CreatedSince": created, "CreatedBy": by,
            "Size": size, "Comment": h.comment,
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
