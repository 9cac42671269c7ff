//! `kiln system df | prune | check`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use super::display::{engine, human_size, print_table};
use crate::Globals;
use anyhow::Result;

/// `kiln system SUBCOMMAND`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Show disk usage.
    Df(DfArgs),
    /// Remove unused data: unreferenced blobs and snapshots, leftovers of
    /// crashed runs; with -a also all build cache and unused snapshots.
    Prune(PruneArgs),
    /// Verify every blob's digest and every reference in the store (fsck).
    Check(CheckArgs),
    /// Serve the Docker Engine API on a unix socket (root-equivalent: see --help).
    Service(service::ServiceArgs),
}

// The service's flags live beside the other commands (commands/service.rs).
#[path = "service.rs"]
mod service;

/// Flags of `kiln system df`.
#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// Output format: "table" or "json" (one object per line).
    #[arg(long)]
    format: Option<String>,
    /// Accepted for docker compatibility.
    #[arg(short, long)]
    verbose: bool,
}

/// Flags of `kiln system prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Also remove all build cache and every unpacked snapshot not in use
    /// (named images are kept: remove them with `kiln rmi`).
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Flags of `kiln system check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Fix what is wrong: delete damaged blobs, drop records pointing at missing data.
    #[arg(long)]
    repair: bool,
}

/// Runs `kiln system SUBCOMMAND`.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    match args.command {
        Sub::Df(a) => run_df(g, a),
        Sub::Prune(a) => run_prune(g, a),
        Sub::Check(a) => run_check(g, a),
        Sub::Service(a) => service::run(g, a),
    }
}

fn run_df(g: &Globals, args: DfArgs) -> Result<ExitCode> {
    let _ = args.verbose;
    let du = engine(g).disk_usage()?;
    let pct = |r: u64, t: u64| (r * 100).checked_div(t).unwrap_or(0);
    let rows = vec![
        vec![
            "Images".to_string(),
            du.images.to_string(),
            "0".into(),
            human_size(du.images_size),
            format!(
                "{} ({}%)",
                human_size(du.images_reclaimable),
                pct(du.images_reclaimable, du.images_size)
            ),
        ],
        vec![
            "Containers".to_string(),
            du.containers.to_string(),
            du.containers.to_string(),
            "0B".into(),
            "0B".into(),
        ],
        vec![
            "Local Volumes".to_string(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
        vec![
            "Build Cache".to_string(),
            du.build_cache.to_string(),
            "0".into(),
            human_size(du.build_cache_size),
            human_size(du.build_cache_size),
        ],
    ];
    match args.format.as_deref() {
        Some("json") => {
            for r in rows {
                println!(
                    "{}",
                    serde_json::json!({"Type": r[0], "TotalCount": r[1], "Active": r[2], "Size": r[3], "Reclaimable": r[4]})
                );
            }
        }
        _ => print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows),
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln system prune`.
pub fn run_prune(g: &Globals, args: PruneArgs) -> Result<ExitCode> {
    if !args.force {
        println!("WARNING! This will remove:");
        println!("  - all unreferenced blobs and unpacked layers");
        if args.all {
            println!("  - all build cache");
        } else {
            println!("  - leftovers of interrupted runs");
        }
        print!("\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let r = engine(g).prune(args.all)?;
    if r.blobs + r.snapshots + r.cache_records + r.leftovers > 0 {
        println!(
            "Deleted: {} blobs, {} snapshots, {} build cache records, {} leftovers",
            r.blobs, r.snapshots, r.cache_records, r.leftovers
        );
        println!();
    }
    println!("Total reclaimed space: {}", human_size(r.bytes));
    Ok(ExitCode::SUCCESS)
}

fn run_check(g: &Globals, args: CheckArgs) -> Result<ExitCode> {
    let r = engine(g).check(args.repair)?;
    for e in &r.errors {
        println!("error: {e}");
    }
    for e in &r.repaired {
        println!("repaired: {e}");
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    println!(
        "checked {} blobs and {} image names: {} errors{}",
        r.blobs_checked,
        r.images_checked,
        r.errors.len(),
        if args.repair {
            format!(", {} repaired", r.repaired.len())
        } else {
            String::new()
        }
    );
    Ok(if r.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
