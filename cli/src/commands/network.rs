//! `kiln network create|ls|inspect|rm|connect|disconnect|prune`

use std::process::ExitCode;

use kiln_engine::images::filter_flag_pairs;
use kiln_engine::networks::{ConnectOptions, NetworkCreateOptions, NetworkFilter};
use kiln_engine::Engine;

use super::display::template;
use crate::Globals;

/// `println!` that stops quietly when the reader went away (`kiln network ls | grep -q`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Flags of `kiln network`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NetworkCommand {
    /// Create a network.
    Create {
        /// The network's name.
        name: String,
        /// Driver (only `bridge`).
        #[arg(short, long)]
        driver: Option<String>,
        /// Subnet in CIDR form (`10.1.2.0/24`).
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address (default: the subnet's first).
        #[arg(long)]
        gateway: Option<String>,
        /// No way out of the network (no default route, no outside names).
        #[arg(long)]
        internal: bool,
        /// Accepted for docker's CLI: kiln's networks are always attachable.
        #[arg(long)]
        attachable: bool,
        /// Set a label (`KEY=VALUE`); may be repeated.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only print IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate IDs.
        #[arg(long)]
        no_trunc: bool,
        /// Filter (`name=`, `id=`, `label=K[=V]`, `driver=`, `type=custom|builtin`).
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// A Go-template subset per network: `{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}`,
        /// `{{.Internal}}`, `{{.Labels}}`, `{{.CreatedAt}}`.
        #[arg(long)]
        format: Option<String>,
    },
    /// Print networks' details as JSON.
    Inspect {
        /// Network names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
        /// A Go-template subset over docker's JSON (`{{.Id}}`, `{{.IPAM.Config}}`, ...).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Network names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not error when a network does not exist.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        /// Network-scoped alias for the container; may be repeated.
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Do not error when the container is not connected.
        #[arg(short, long)]
        force: bool,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Remove all networks no container uses.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Filter (`label=K[=V]`).
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
    },
}

/// Runs a `kiln network` subcommand.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    match args.command {
        NetworkCommand::Create {
            name,
            driver,
            subnet,
            gateway,
            internal,
            attachable: _,
            labels,
        } => {
            let created = engine.network_create(&NetworkCreateOptions {
                name,
                driver,
                subnet,
                gateway,
                internal,
                labels: kiln_engine::build::parse_labels(&labels),
            })?;
            say!("{}", created.id);
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            filters,
            format,
        } => {
            let filter = NetworkFilter::from_pairs(filter_flag_pairs(&filters)?)?;
            let mut list = engine.network_list(&filter)?;
            // docker's CLI lists by name
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let id = |s: &str| -> String {
                if no_trunc {
                    s.to_string()
                } else {
                    s.chars().take(12).collect()
                }
            };
            if let Some(fmt) = format.filter(|f| !f.is_empty() && !quiet) {
                for n in &list {
                    let labels: Vec<String> =
                        n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let row = serde_json::json!({
                        "ID": id(&n.id),
                        "Name": n.name,
                        "Driver": n.driver,
                        "Scope": n.scope,
                        "IPv6": n.enable_ipv6,
                        "Internal": n.internal,
                        "Labels": labels.join(","),
                        "CreatedAt": n.created,
                    });
                    say!("{}", template(&fmt, &row)?);
                }
            } else if quiet {
                for n in &list {
                    say!("{}", id(&n.id));
                }
            } else {
                say!(
                    "{:<width$}   {:<20}{:<10}SCOPE",
                    "NETWORK ID",
                    "NAME",
                    "DRIVER",
                    width = if no_trunc { 64 } else { 12 }
                );
                for n in &list {
                    say!("{}   {:<20}{:<10}{}", id(&n.id), n.name, n.driver, n.scope);
                }
            }
        }
        NetworkCommand::Inspect { names, format } => {
            let mut all = Vec::new();
            let mut failed = false;
            for n in &names {
                match engine.network_inspect(n) {
                    Ok(r) => all.push(r),
                    Err(e) => {
                        eprintln!("kiln: error: {e}");
                        failed = true;
                    }
                }
            }
            match format.as_deref() {
                None | Some("") | Some("json") => {
                    say!("{}", serde_json::to_string_pretty(&all)?)
                }
                Some(fmt) => {
                    for n in &all {
                        say!("{}", template(fmt, &serde_json::to_value(n)?)?);
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        NetworkCommand::Rm { names, force } => {
            let mut failed = false;
            for n in names {
                match engine.network_remove(&n) {
                    Ok(()) => say!("{n}"),
                    Err(kiln_engine::Error::NotFound(_)) if force => {}
                    Err(e) => {
                        eprintln!("kiln: error: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        NetworkCommand::Connect {
            aliases,
            ip,
            network,
            container,
        } => engine.network_connect(&network, &container, &ConnectOptions { aliases, ipv4: ip })?,
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => engine.network_disconnect(&network, &container, force)?,
        NetworkCommand::Prune { force, filters } => {
            if !force {
                anyhow::bail!(
                    "kiln network prune removes every unused network: pass -f to confirm"
                );
            }
            let filter = NetworkFilter::from_pairs(filter_flag_pairs(&filters)?)?;
            let removed = engine.network_prune(&filter)?;
            if !removed.is_empty() {
                say!("Deleted Networks:");
                for n in removed {
                    say!("{n}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
