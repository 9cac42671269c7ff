//! `kiln version`

use std::process::ExitCode;

use crate::Globals;

/// Flags of `kiln version`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the version and the platform this kiln was built for.
pub fn run(globals: &Globals, _args: Args) -> anyhow::Result<ExitCode> {
    println!("kiln version {}", env!("CARGO_PKG_VERSION"));
    println!(
        "platform: {}/{}",
        std::env::consts::OS,
        oci_arch(std::env::consts::ARCH)
    );
    println!("root: {}", globals.root.display());
    Ok(ExitCode::SUCCESS)
}

/// Rust's architecture names in OCI (GOARCH) spelling.
pub fn oci_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
