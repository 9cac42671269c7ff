//! `kiln logs`

use std::io::Write;
use std::process::ExitCode;

use kiln_engine::containers::log::{parse_rfc3339_nanos, LogStream};
use kiln_engine::containers::LogsOptions;
use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing output as the container writes it.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all` for every line).
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    tail: String,
    /// Only lines written at or after this time (RFC 3339, or a duration such as 10m ago).
    #[arg(long)]
    since: Option<String>,
    /// Only lines written before this time (RFC 3339, or a duration such as 10m ago).
    #[arg(long)]
    until: Option<String>,
    /// Show each line's time.
    #[arg(short, long)]
    timestamps: bool,
    /// Container name or id.
    container: String,
}

/// A `--since`/`--until` value: RFC 3339, unix seconds, or a duration before now (`10m`).
fn parse_time(text: &str) -> anyhow::Result<u64> {
    if let Some(t) = parse_rfc3339_nanos(text) {
        return Ok(t);
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Ok((secs * 1e9) as u64);
    }
    let (num, unit) = text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let n: f64 = num.parse().map_err(|_| {
        anyhow::anyhow!("invalid time {text:?}: use RFC 3339 or a duration like 10m")
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("invalid time {text:?}: use RFC 3339 or a duration like 10m"),
    };
    let now = kiln_engine::containers::log::now_nanos();
    Ok(now.saturating_sub((secs * 1e9) as u64))
}

/// Prints a container's output: its stdout on stdout, its stderr on stderr.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}"))?,
        ),
    };
    let options = LogsOptions {
        follow: args.follow,
        tail,
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
        timestamps: args.timestamps,
        ..LogsOptions::default()
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    Engine::new(&globals.root).container_logs(
        &args.container,
        options,
        &mut |chunk| match chunk.stream {
            LogStream::Stdout => {
                out.write_all(&chunk.bytes)?;
                out.flush()
            }
            LogStream::Stderr => err.write_all(&chunk.bytes),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
