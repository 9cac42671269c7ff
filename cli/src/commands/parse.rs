//! `kiln parse [-f Dockerfile] [--json | --dump]`

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Flags of `kiln parse`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Dockerfile to read (`-` for standard input).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        default_value = "Dockerfile"
    )]
    file: PathBuf,
    /// Print the typed syntax tree as JSON (schema: parser/SCHEMA.md).
    #[arg(long, conflicts_with = "dump")]
    json: bool,
    /// Print BuildKit's s-expression dump of the line-level parse.
    #[arg(long)]
    dump: bool,
    /// Stop after the line-level parse (what BuildKit's parser package
    /// accepts) and print its dump; skip the instruction checks.
    #[arg(long)]
    syntax_only: bool,
}

/// Parses the Dockerfile and prints it; a bad file exits 1 with a pointed error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_dockerfile(&args.file)?;
    let text = match kiln_parser::decode(&bytes, &name) {
        Ok(t) => t,
        Err(err) => return Ok(report(err)),
    };
    let raw = match kiln_parser::parse_raw(&text, &name) {
        Ok(raw) => raw,
        Err(err) => return Ok(report(err)),
    };
    let dump = args.dump.then(|| raw.dump());
    if args.syntax_only {
        emit(&dump.unwrap_or_else(|| raw.dump()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let tree = match kiln_parser::instructions::from_raw(raw, &text, &name) {
        Ok(tree) => tree,
        Err(err) => return Ok(report(err)),
    };
    if let Some(dump) = dump {
        emit(&dump)?;
    } else if args.json {
        emit(&(tree.to_json() + "\n"))?;
    } else {
        emit(&kiln_parser::outline::outline(&tree))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a Dockerfile from a path, or from standard input for `-`; returns
/// the name errors should show and the bytes.
pub fn read_dockerfile(path: &std::path::Path) -> anyhow::Result<(String, Vec<u8>)> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the Dockerfile from standard input")?;
        Ok(("-".to_string(), buf))
    } else {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
        Ok((name, bytes))
    }
}

/// Writes `text` to stdout; a closed pipe (`kiln parse | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

/// Prints a parse error with its source excerpt and returns exit code 1.
pub fn report(err: kiln_parser::ParseError) -> ExitCode {
    // The report's first line names file:line:column; then the source line
    // with a marker and the suggestion, if any.
    eprintln!("{:?}", miette::Report::new(err));
    ExitCode::from(1)
}
