//! `kiln ps`

use std::process::ExitCode;

use kiln_engine::containers::ContainerFilter;
use kiln_engine::Engine;

use crate::commands::display::{print_table, since};

use crate::Globals;

/// Flags of `kiln ps`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    all: bool,
    /// Only print container ids.
    #[arg(short, long)]
    quiet: bool,
    /// Filter: label=K[=V], name=, id=, status=created|running|restarting|exited,
    /// ancestor=IMAGE, health=starting|healthy|unhealthy|none, restart-policy=NAME.
    #[arg(short, long)]
    filter: Vec<String>,
}

/// Adds docker's `--filter KEY=VALUE`s of containers to `filter`.
pub(crate) fn add_filters(filter: &mut ContainerFilter, given: &[String]) -> anyhow::Result<()> {
    for f in given {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        let list = match key {
            "label" => &mut filter.labels,
            "name" => &mut filter.names,
            "id" => &mut filter.ids,
            "status" => &mut filter.statuses,
            "ancestor" => &mut filter.ancestors,
            "health" => &mut filter.healths,
            "restart-policy" => &mut filter.restart_policies,
            other => anyhow::bail!("invalid filter '{other}'"),
        };
        list.push(value.to_string());
    }
    Ok(())
}

/// Lists containers.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let mut filter = ContainerFilter {
        all: args.all,
        ..ContainerFilter::default()
    };
    add_filters(&mut filter, &args.filter)?;
    let summaries = Engine::new(&globals.root).container_summaries(&filter)?;
    if args.quiet {
        for c in summaries {
            println!("{}", &c.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for c in summaries {
        let mut cmd = format!("\"{}\"", c.command);
        if cmd.chars().count() > 22 {
            cmd = format!("{}…\"", cmd.chars().take(19).collect::<String>());
        }
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}/{}", p.ip, p.public_port, p.private_port, p.kind))
            .collect();
        rows.push(vec![
            c.id[..12].to_string(),
            c.image.clone(),
            cmd,
            since(c.created as i64),
            c.status.clone(),
            ports.join(", "),
            c.names
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
        ]);
    }
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
