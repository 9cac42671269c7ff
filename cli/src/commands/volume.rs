//! `kiln volume create|ls|rm|inspect`

use std::process::ExitCode;

use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln volume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum VolumeCommand {
    /// Create a named volume.
    Create {
        /// The volume's name.
        name: String,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only print names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm {
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print volumes' details as JSON.
    Inspect {
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs a `kiln volume` subcommand.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    match args.command {
        VolumeCommand::Create { name } => println!("{}", engine.create_volume(&name)?.name),
        VolumeCommand::Ls { quiet } => {
            if !quiet {
                println!("{:<10}VOLUME NAME", "DRIVER");
            }
            for v in engine.list_volumes()? {
                if quiet {
                    println!("{}", v.name);
                } else {
                    println!("{:<10}{}", v.driver, v.name);
                }
            }
        }
        VolumeCommand::Rm { names } => {
            for n in names {
                engine.remove_volume(&n)?;
                println!("{n}");
            }
        }
        VolumeCommand::Inspect { names } => {
            let all = names
                .iter()
                .map(|n| engine.inspect_volume(n))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
