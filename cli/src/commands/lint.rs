//! `kiln lint [-f Dockerfile] [--format text|json]`: BuildKit's build checks
//! that the text alone decides, as `docker build --check` reports them.

use std::path::PathBuf;
use std::process::ExitCode;

use super::parse::{read_dockerfile, report};

/// Flags of `kiln lint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Dockerfile to check (`-` for standard input).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        default_value = "Dockerfile"
    )]
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One block per finding: location, rule, message, the source line.
    Text,
    /// A JSON array of findings.
    Json,
}

/// Exits 0 when the file is clean, 1 when it has findings or does not parse
/// (as `docker build --check`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_dockerfile(&args.file)?;
    let df = match kiln_parser::parse_bytes(&bytes, &name) {
        Ok(df) => df,
        Err(err) => return Ok(report(err)),
    };
    let findings = kiln_parser::lint::lint(&df);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
        Format::Text => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            for f in &findings {
                let (line, col) = (f.span.start.line, f.span.start.column);
                println!("{name}:{line}:{col}: warning: {}: {}", f.rule, f.message);
                if let Some(src) = lines.get(line.wrapping_sub(1)) {
                    let src = src.trim_start_matches('\u{feff}');
                    let width = if f.span.end.line == line {
                        f.span.end.column.saturating_sub(col).max(1)
                    } else {
                        src.chars().count().saturating_sub(col - 1).max(1)
                    };
                    println!("{line:>5} | {src}");
                    println!(
                        "      | {}{}",
                        " ".repeat(col.saturating_sub(1)),
                        "^".repeat(width)
                    );
                }
                println!("      = see {}", f.url);
            }
            if findings.is_empty() {
                println!("Check complete, no warnings found.");
            } else {
                println!("Check complete, {} warning(s) found.", findings.len());
            }
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
