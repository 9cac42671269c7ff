//! `kiln push [-q] REF`: send an image of the local store to a registry (the engine's
//! [`kiln_engine::Engine::push`], drawn as docker draws it).

use std::process::ExitCode;

use anyhow::Result;
use kiln_engine::{Engine, PushOptions};

use crate::render::{Rendering, View};
use crate::Globals;

/// Flags of `kiln push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
    /// Require HTTPS and verify certificates (loopback registries use plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: bool,
    /// The image: `[host[:port]/]repo[:tag]`, as named in the local store.
    pub reference: String,
}

/// Pushes and prints the name when quiet.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let engine = Engine::new(&g.root);
    let rendering = Rendering::start(View::transfer(args.quiet));
    let pushed = engine.push(
        &PushOptions {
            reference: args.reference,
            tls_verify: args.tls_verify,
            // The CLI's credentials are docker's files, which the engine reads.
            credentials: None,
        },
        rendering.progress(),
    );
    rendering.finish();
    let pushed = pushed?;
    if args.quiet {
        println!("{}", pushed.reference.familiar());
    }
    Ok(ExitCode::SUCCESS)
}
