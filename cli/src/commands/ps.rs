//! `kiln ps`

use std::process::ExitCode;

use kiln_engine::containers::is_running;
use kiln_engine::Engine;
use kiln_executor::state::{now, Status};

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
}

fn ago(t: u64) -> String {
    let s = now().saturating_sub(t);
    match s {
        0..=59 => format!("{s} seconds"),
        60..=3599 => format!("{} minutes", s / 60),
        3600..=86399 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

/// Lists containers.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let recs = Engine::new(&globals.root).list_containers(args.all)?;
    if args.quiet {
        for r in recs {
            println!("{}", &r.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14}{:<22}{:<24}{:<16}{:<26}{:<30}NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"
    );
    for r in recs {
        let mut cmd = format!("\"{}\"", r.command.join(" "));
        if cmd.len() > 22 {
            cmd = format!(
                "{}…\"",
                &cmd[..cmd.char_indices().nth(19).map(|(i, _)| i).unwrap_or(19)]
            );
        }
        let status = match (r.status, is_running(&r)) {
            (Status::Exited, _) | (_, false) => format!("Exited ({})", r.exit_code.unwrap_or(0)),
            (Status::Created, true) => "Created".to_string(),
            (Status::Running, true) => format!("Up {}", ago(r.created)),
        };
        let image: String = r
            .image
            .chars()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        println!(
            "{:<14}{:<22}{:<24}{:<16}{:<26}{:<30}{}",
            &r.id[..12],
            image,
            cmd,
            format!("{} ago", ago(r.created)),
            status,
            r.ports.join(", "),
            r.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
