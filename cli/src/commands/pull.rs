//! `kiln pull [-q] [--platform P] REF`: fetch an image from a registry into the local store
//! (the engine's [`kiln_engine::Engine::pull`], drawn as docker draws it).

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use kiln_engine::{Engine, PullOptions};
use kiln_registry::Platform;

use crate::render::{Rendering, View};
use crate::Globals;

/// Flags of `kiln pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
    /// The platform to pick from a multi-platform image (`os/arch[/variant]`; default: the host's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Require HTTPS and verify certificates (loopback registries use plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: bool,
    /// The image: `[host[:port]/]repo[:tag|@digest]`.
    pub reference: String,
}

/// Pulls and prints the name.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let platform = match &args.platform {
        Some(p) => p.parse::<Platform>().map_err(|e| anyhow!("{e}"))?,
        None => Platform::host(),
    };
    let engine = Engine::new(&g.root);
    let rendering = Rendering::start(View::transfer(args.quiet));
    let pulled = engine.pull(
        &PullOptions {
            reference: args.reference,
            platform,
            tls_verify: args.tls_verify,
            // The CLI's credentials are docker's files, which the engine reads.
            credentials: None,
        },
        rendering.progress(),
    );
    rendering.finish();
    println!("{}", pulled?.reference);
    Ok(ExitCode::SUCCESS)
}
