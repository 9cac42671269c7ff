//! `kiln stats`: containers' CPU, memory and pids, as `docker stats` prints them.

use std::process::ExitCode;

use kiln_engine::containers::StatsReport;
use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one table and exit (the only mode without a terminal).
    #[arg(long)]
    no_stream: bool,
    /// Show all containers (default: the running ones).
    #[arg(short, long)]
    all: bool,
    /// Containers, by name or id (default: all running).
    containers: Vec<String>,
}

/// Sizes as docker's `stats` prints memory: binary units, four significant digits.
fn bytes_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", four_digits(value), UNITS[unit])
}

/// Go's `%.4g` for the values `bytes_size` prints (under 1024).
fn four_digits(value: f64) -> String {
    let decimals = if value >= 1000.0 {
        0
    } else if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// One row of the table.
fn row(id: &str, report: &StatsReport) -> Vec<String> {
    vec![
        id.chars().take(12).collect(),
        report.name.trim_start_matches('/').to_string(),
        format!("{:.2}%", report.cpu_percent()),
        format!(
            "{} / {}",
            bytes_size(report.memory_usage()),
            bytes_size(report.memory_stats.limit)
        ),
        format!("{:.2}%", report.memory_percent()),
        "0B / 0B".into(),
        "0B / 0B".into(),
        report.pids_stats.current.to_string(),
    ]
}

const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// Prints the table once, or every second until interrupted.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    let keys: Vec<String> = if args.containers.is_empty() {
        engine
            .list_containers(args.all)?
            .into_iter()
            .map(|r| r.id)
            .collect()
    } else {
        args.containers.clone()
    };
    loop {
        // Every container's second of sampling at once, not one after another.
        let reports: Vec<anyhow::Result<(String, StatsReport)>> = std::thread::scope(|s| {
            let handles: Vec<_> = keys
                .iter()
                .map(|k| {
                    let engine = &engine;
                    s.spawn(move || {
                        let rec = engine.find_container(k)?;
                        Ok((rec.id.clone(), engine.container_stats_once(k, false)?))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a stats thread panicked")))
                })
                .collect()
        });
        let mut rows = Vec::new();
        for r in reports {
            let (id, report) = r?;
            rows.push(row(&id, &report));
        }
        if !args.no_stream {
            // docker's screen: cleared, then the table from the top.
            print!("\x1b[2J\x1b[H");
        }
        super::display::print_table(&HEADER, &rows);
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_docker_stats_prints_them() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(8 * 1024 * 1024 * 1024), "8GiB");
        assert_eq!(bytes_size(1_294_336), "1.234MiB");
    }
}
