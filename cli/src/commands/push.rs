//! `kiln push [-q] [-a] REF`: send an image of the local store to a registry (the engine's
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
    /// Push every tag of the repository REF names (REF without a tag).
    #[arg(short, long)]
    pub all_tags: bool,
    /// Require HTTPS and verify certificates (loopback registries use plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: bool,
    /// The image: `[host[:port]/]repo[:tag]`, as named in the local store.
    pub reference: String,
}

/// Pushes and prints the name when quiet.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    // docker's check: the engine would push just the tag a name with one has.
    if args.all_tags
        && args
            .reference
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    }
    let engine = Engine::new(&g.root);
    let rendering = Rendering::start(View::transfer(args.quiet));
    let opts = PushOptions {
        reference: args.reference,
        tls_verify: args.tls_verify,
        // The CLI's credentials are docker's files, which the engine reads.
        credentials: None,
    };
    let pushed = if args.all_tags {
        engine.push_all_tags(&opts, rendering.progress())
    } else {
        engine.push(&opts, rendering.progress()).map(|p| vec![p])
    };
    rendering.finish();
    for pushed in pushed? {
        if args.quiet {
            println!("{}", pushed.reference.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}
