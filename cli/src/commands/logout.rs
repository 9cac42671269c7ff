//! `kiln logout`: remove a registry's credentials from docker's config file.

use std::process::ExitCode;

use kiln_registry::auth::DockerConfig;

/// Flags of `kiln logout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry (host[:port]); Docker Hub when omitted.
    pub server: Option<String>,
}

/// Removes the entry (and erases it from a credential helper), as `docker logout` does.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = kiln_engine::login::registry_host(args.server.as_deref());
    let path = DockerConfig::default_path()?;
    let mut file = DockerConfig::load(&path)?;
    if file.remove(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
