//! `kiln debug`: tools to look inside kiln's stages.
//!
//! `kiln debug expand [--env K=V]... [--escape C] [--words] -- WORD` shows
//! how BuildKit's shell lexer (kiln-parser's `shell` module) expands one
//! Dockerfile word.

use std::process::ExitCode;

use anyhow::bail;
use kiln_parser::shell::{EnvList, Lexer};

/// Flags of `kiln debug`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DebugCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DebugCommand {
    /// Expand one Dockerfile word as BuildKit does ($v, ${v:-w}, quotes, escapes).
    Expand(ExpandArgs),
}

/// Flags of `kiln debug expand`.
#[derive(Debug, clap::Args)]
struct ExpandArgs {
    /// A variable in scope, as KEY=VALUE (KEY alone sets it to ""); repeatable.
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    env: Vec<String>,
    /// The escape character: '\' (default) or '`' (as `# escape=` sets it).
    #[arg(long, default_value = "\\", value_name = "C")]
    escape: String,
    /// Print the word split into words, one per line (as for EXPOSE).
    #[arg(long)]
    words: bool,
    /// The word to expand.
    #[arg(allow_hyphen_values = true)]
    word: String,
}

/// Runs a `kiln debug` subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DebugCommand::Expand(a) => expand(a),
    }
}

fn expand(args: ExpandArgs) -> anyhow::Result<ExitCode> {
    let escape = match args.escape.as_str() {
        "\\" => '\\',
        "`" => '`',
        other => bail!("--escape must be '\\' or '`', not {other:?}"),
    };
    let env = EnvList::from_entries(&args.env);
    let lexer = Lexer::new(escape);
    match lexer.process_word_with_matches(&args.word, &env) {
        Ok(expansion) => {
            if args.words {
                for w in &expansion.words {
                    println!("{w}");
                }
            } else {
                println!("{}", expansion.word);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let column = e.column();
            bail!(
                "{e}\n  {}\n  {}^ column {column}",
                args.word,
                " ".repeat(column - 1)
            )
        }
    }
}
