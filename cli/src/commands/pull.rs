//! `kiln pull [-q] [--platform P] REF`: fetch an image from a registry into the local store.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use kiln_cache::Store;
use kiln_registry::{BlobEvent, Client, ClientConfig, Platform, ProgressFn, Reference};

use super::display::store as open_store;
use super::layer_progress::LayerLines;
use crate::registry_store::{to_store_digest, RegistryStore};
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

/// How a pull runs.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Verify TLS certificates.
    pub tls_verify: bool,
    /// No progress lines.
    pub quiet: bool,
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The normalized reference (`127.0.0.1:5000/app:1`, `docker.io/library/busybox:latest`).
    pub reference: Reference,
    /// The local name it was stored under, when the reference has a tag.
    pub name: Option<String>,
    /// The image manifest's digest.
    pub manifest_digest: kiln_cache::Digest,
}

/// Pulls and prints the name.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let platform = match &args.platform {
        Some(p) => p.parse::<Platform>().map_err(|e| anyhow!("{e}"))?,
        None => Platform::host(),
    };
    let store = open_store(g)?;
    let pulled = pull_image(
        &store,
        &args.reference,
        &PullOptions {
            platform,
            tls_verify: args.tls_verify,
            quiet: args.quiet,
        },
    )?;
    println!("{}", pulled.reference);
    Ok(ExitCode::SUCCESS)
}

/// The 12 hex digits docker shows for a blob.
pub fn short_digest(d: &str) -> &str {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// A registry client for the CLI: docker's config and the registries file, `tls_verify`,
/// and `progress`.
pub fn client(tls_verify: bool, progress: Option<ProgressFn>) -> Result<Client> {
    let mut config = ClientConfig::from_env().context("reading the registry configuration")?;
    config.tls_verify = tls_verify;
    config.progress = progress;
    Ok(Client::new(config)?)
}

/// A small runtime for one registry operation.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Parses a reference as docker does, with an error naming it.
pub fn parse_reference(input: &str) -> Result<Reference> {
    Reference::parse(input).map_err(|e| anyhow!("invalid reference format {input:?}: {e}"))
}

/// Pulls `input` into the store: blobs verified and committed through the content store,
/// then the manifest, then the name (so a failed pull leaves no name and no partial blob).
pub fn pull_image(store: &Store, input: &str, opts: &PullOptions) -> Result<Pulled> {
    let reference = parse_reference(input)?;
    let name = reference.tag().map(|t| reference.with_tag(t).familiar());
    let before = name
        .as_deref()
        .and_then(|n| store.image(n).ok())
        .map(|i| i.manifest_digest);

    let progress: Option<ProgressFn> = if opts.quiet {
        None
    } else {
        eprintln!(
            "{}: Pulling from {}",
            reference.manifest_reference(),
            reference.path()
        );
        let lines = LayerLines::new();
        Some(Arc::new(move |digest, event| {
            let short = short_digest(digest.as_str());
            match event {
                BlobEvent::Waiting { .. } => lines.status(short, "Pulling fs layer"),
                BlobEvent::Exists => lines.status(short, "Already exists"),
                BlobEvent::Retrying {
                    attempt, reason, ..
                } => lines.status(short, &format!("Retrying (attempt {attempt}): {reason}")),
                BlobEvent::Transferring { done, total } => {
                    lines.bytes(short, "Downloading", *done, *total)
                }
                BlobEvent::Done => lines.status(short, "Pull complete"),
                BlobEvent::Mounted { .. } => {}
            }
        }))
    };
    let client = client(opts.tls_verify, progress)?;
    // Blobs written or touched while the lease is held survive a concurrent prune until the
    // name below makes them reachable.
    let _lease = store.lease(&format!("pull-{}", std::process::id()))?;
    let sink = RegistryStore::new(store.clone());
    let pulled = runtime()?
        .block_on(client.pull(&reference, &opts.platform, &sink))
        .with_context(|| format!("pulling {reference}"))?;

    let manifest_digest = to_store_digest(&pulled.manifest.digest).map_err(|e| anyhow!("{e}"))?;
    let stored = store.content().put_bytes(&pulled.manifest.bytes)?;
    if stored != manifest_digest {
        bail!("manifest of {reference}: stored as {stored}, expected {manifest_digest}");
    }
    match &name {
        Some(n) => {
            store
                .set_name(n, &manifest_digest)
                .with_context(|| format!("naming {n}"))?;
        }
        None => {
            // Check it loads, so a bad image fails here rather than at run time.
            store.load_image(&manifest_digest, Vec::new())?;
            if !opts.quiet {
                eprintln!(
                    "warning: {reference} has no tag, so it gets no name: the next prune removes it"
                );
            }
        }
    }
    if !opts.quiet {
        eprintln!("Digest: {}", pulled.manifest.digest);
        let shown = name.clone().unwrap_or_else(|| reference.to_string());
        if before.as_ref() == Some(&manifest_digest) {
            eprintln!("Status: Image is up to date for {shown}");
        } else {
            eprintln!("Status: Downloaded newer image for {shown}");
        }
    }
    Ok(Pulled {
        reference,
        name,
        manifest_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_digests_are_twelve_hex_digits() {
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
    }

    #[test]
    fn bad_references_are_named_in_the_error() {
        let err = parse_reference("Not//A:Valid:Ref").unwrap_err().to_string();
        assert!(err.contains("Not//A:Valid:Ref"), "{err}");
        assert_eq!(
            parse_reference("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }
}
