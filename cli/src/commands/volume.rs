//! `kiln volume create|ls|rm|inspect`

use std::process::ExitCode;

use kiln_engine::images::filter_flag_pairs;
use kiln_engine::volumes::{VolumeCreate, VolumeFilter};
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
        /// Set a label on the volume (`KEY=VALUE`); may be repeated.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only print names.
        #[arg(short, long)]
        quiet: bool,
        /// Filter output (`name=PART`, `label=KEY[=VALUE]`, `dangling=true|false`); may be
        /// repeated.
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
    },
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm {
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove a volume even while a container mounts it.
        #[arg(short, long)]
        force: bool,
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
        VolumeCommand::Create { name, labels } => {
            let spec = VolumeCreate {
                name: Some(name),
                labels: kiln_engine::build::parse_labels(&labels),
                ..VolumeCreate::default()
            };
            println!("{}", engine.create_volume_with(&spec)?.name)
        }
        VolumeCommand::Ls { quiet, filters } => {
            let filter = VolumeFilter::parse(filter_flag_pairs(&filters)?)?;
            if !quiet {
                println!("{:<10}VOLUME NAME", "DRIVER");
            }
            for v in engine.list_volumes_filtered(&filter)? {
                if quiet {
                    println!("{}", v.name);
                } else {
                    println!("{:<10}{}", v.driver, v.name);
                }
            }
        }
        VolumeCommand::Rm { names, force } => {
            for n in names {
                engine.remove_volume_checked(&n, force)?;
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
