//! `kiln ps`

use std::process::ExitCode;

use kiln_engine::containers::ContainerFilter;
use kiln_engine::Engine;

use crate::commands::display::since;

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
    /// Filter: label=K[=V], name=, id=, status=created|running|exited, ancestor=IMAGE.
    #[arg(short, long)]
    filter: Vec<String>,
}

/// Lists containers.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let mut filter = ContainerFilter {
        all: args.all,
        ..ContainerFilter::default()
    };
    for f in &args.filter {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        let list = match key {
            "label" => &mut filter.labels,
            "name" => &mut filter.names,
            "id" => &mut filter.ids,
            "status" => &mut filter.statuses,
            "ancestor" => &mut filter.ancestors,
            other => anyhow::bail!("invalid filter '{other}'"),
        };
        list.push(value.to_string());
    }
    let summaries = Engine::new(&globals.root).container_summaries(&filter)?;
    if args.quiet {
        for c in summaries {
            println!("{}", &c.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14}{:<22}{:<24}{:<16}{:<26}{:<30}NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"
    );
    for c in summaries {
        let mut cmd = format!("\"{}\"", c.command);
        if cmd.len() > 22 {
            cmd = format!(
                "{}…\"",
                &cmd[..cmd.char_indices().nth(19).map(|(i, _)| i).unwrap_or(19)]
            );
        }
        let image: String = c
            .image
            .chars()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}/{}", p.ip, p.public_port, p.private_port, p.kind))
            .collect();
        println!(
            "{:<14}{:<22}{:<24}{:<16}{:<26}{:<30}{}",
            &c.id[..12],
            image,
            cmd,
            since(c.created as i64),
            c.status,
            ports.join(", "),
            c.names
                .first()
                .map(|n| n.trim_start_matches('/'))
                .unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
