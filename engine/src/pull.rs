//! Pull: fetch an image from a registry into the local store (`kiln pull`, `POST
//! /images/create`, and the bases a build lacks).
//!
//! Blobs are verified and committed through the content store, then the manifest, then the
//! name: a failed pull leaves no name and no partial blob.
//!
//! Credentials come from the files docker and the containers tools read
//! (`ClientConfig::from_env`), unless the caller hands some in (the API's `X-Registry-Auth`):
//! those are used for that registry instead, held in memory only, and no file is read.

use std::sync::Arc;

use kiln_cache::Store;
use kiln_registry::auth::{CredentialStore, RegistryAuth};
use kiln_registry::{Client, ClientConfig, ProgressFn, Reference};

/// The platform a pull picks from an index (`linux/amd64`).
pub use kiln_registry::Platform;

use crate::events::{Event, LayerStatus, Progress, Transfer};
use crate::registry_store::{to_store_digest, RegistryStore};
use crate::{Engine, Error, Result, ResultExt};

/// What to pull and how.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The image: `[host[:port]/]repo[:tag|@digest]`.
    pub reference: String,
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Require HTTPS and verify certificates (loopback registries use plain HTTP).
    pub tls_verify: bool,
    /// Credentials for the reference's registry, for this pull only (docker's
    /// `X-Registry-Auth`); `None` reads docker's credential files, as the CLI does. Given
    /// ones (even empty, meaning anonymous) are used instead of the files.
    pub credentials: Option<RegistryAuth>,
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

impl Engine {
    /// Pulls `opts.reference` into the store. Sends [`Event::PullStarted`], a
    /// [`Event::Layer`] per layer change, a [`Event::Warning`] when the image gets no name,
    /// then [`Event::PullFinished`].
    pub fn pull(&self, opts: &PullOptions, progress: &Progress) -> Result<Pulled> {
        pull_into(&self.store()?, opts, progress)
    }
}

/// A registry client configured as docker's CLI would be (docker's config and the
/// registries file), with `tls_verify` and `progress`; with `given` credentials, those
/// instead of docker's credential files.
pub fn client(
    tls_verify: bool,
    progress: Option<ProgressFn>,
    given: Option<CredentialStore>,
) -> Result<Client> {
    let mut config = ClientConfig::from_env().context("reading the registry configuration")?;
    config.tls_verify = tls_verify;
    config.progress = progress;
    if let Some(given) = given {
        config.credentials = given;
    }
    Ok(Client::new(config)?)
}

/// The credential store for credentials handed in for `reference`'s registry.
pub(crate) fn given_for(
    reference: &Reference,
    credentials: Option<&RegistryAuth>,
) -> Option<CredentialStore> {
    credentials.map(|auth| CredentialStore::given([(reference.domain().to_string(), auth.clone())]))
}

/// The registry client's per-blob events as engine [`Event::Layer`]s, for the blobs `shown`
/// accepts; `None` when nobody listens, so the client skips building them.
pub(crate) fn layer_events(
    progress: &Progress,
    transfer: Transfer,
    shown: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Option<ProgressFn> {
    let progress = progress.clone();
    progress.is_listening().then(|| {
        let forward: ProgressFn = Arc::new(move |digest, event| {
            if shown(digest.as_str()) {
                progress.emit(Event::Layer {
                    transfer,
                    digest: digest.to_string(),
                    status: LayerStatus::from(event),
                })
            }
        });
        forward
    })
}

/// A small runtime for one registry operation.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Parses `os/arch[/variant]` (`--platform`, the API's `platform`), with an error naming it.
pub fn parse_platform(text: &str) -> Result<Platform> {
    text.parse::<Platform>()
        .map_err(|e| Error::invalid(format!("invalid platform {text:?}: {e}")))
}

/// Parses a reference as docker does, with an error naming it.
pub fn parse_reference(input: &str) -> Result<Reference> {
    Reference::parse(input)
        .map_err(|e| Error::invalid(format!("invalid reference format {input:?}: {e}")))
}

/// docker's image name and separate tag (the API's `fromImage` and `tag`, `/images/{name}/push`
/// and `tag`) as one reference: `tag` replaces the name's own tag; a tag that is a digest
/// (`sha256:<hex>`) pins it instead; an empty tag leaves the name as written.
pub fn join_reference(image: &str, tag: &str) -> Result<String> {
    if tag.is_empty() {
        return Ok(image.to_string());
    }
    let reference = Reference::parse_normalized(image)
        .map_err(|e| Error::invalid(format!("invalid reference format {image:?}: {e}")))?;
    let joined = if tag.contains(':') {
        let digest = kiln_registry::Digest::parse(tag)
            .map_err(|e| Error::invalid(format!("invalid digest {tag:?}: {e}")))?;
        let mut pinned = reference.with_digest(digest);
        pinned.clear_tag();
        pinned.familiar()
    } else {
        let joined = reference.with_tag(tag);
        // Check the tag's grammar here, so the error names what was asked for.
        parse_reference(&joined.familiar())?;
        joined.familiar()
    };
    Ok(joined)
}

/// Pulls `opts.reference` into `store` (the engine's pull, for callers that hold the store).
pub(crate) fn pull_into(store: &Store, opts: &PullOptions, progress: &Progress) -> Result<Pulled> {
    let reference = parse_reference(&opts.reference)?;
    let name = reference.tag().map(|t| reference.with_tag(t).familiar());
    // What the store had under that name (or, for a digest, at all): "up to date" after.
    let before = match (&name, reference.digest()) {
        (Some(n), _) => store.image(n).ok().map(|i| i.manifest_digest),
        (None, Some(d)) => to_store_digest(d)
            .ok()
            .filter(|d| store.content().contains(d)),
        (None, None) => None,
    };

    progress.emit(Event::PullStarted {
        reference: reference.manifest_reference(),
        repository: reference.path().to_string(),
    });
    let client = client(
        opts.tls_verify,
        layer_events(progress, Transfer::Pull, |_| true),
        given_for(&reference, opts.credentials.as_ref()),
    )?;
    // Blobs written or touched while the lease is held survive a concurrent prune until the
    // name below makes them reachable.
    let _lease = store.lease(&format!("pull-{}", std::process::id()))?;
    let sink = RegistryStore::new(store.clone());
    let pulled = runtime()?
        .block_on(client.pull(&reference, &opts.platform, &sink))
        .with_context(|| format!("pulling {reference}"))?;

    let manifest_digest = to_store_digest(&pulled.manifest.digest)
        .map_err(|e| Error::Internal(format!("manifest digest of {reference}: {e}")))?;
    let stored = store.content().put_bytes(&pulled.manifest.bytes)?;
    if stored != manifest_digest {
        return Err(Error::Internal(format!(
            "manifest of {reference}: stored as {stored}, expected {manifest_digest}"
        )));
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
            progress.warn(format!(
                "{reference} has no tag, so it gets no name: the next prune removes it"
            ));
        }
    }
    progress.emit(Event::PullFinished {
        digest: pulled.manifest.digest.to_string(),
        name: name.clone().unwrap_or_else(|| reference.familiar()),
        up_to_date: before.as_ref() == Some(&manifest_digest),
    });
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
    fn names_and_tags_join_as_docker_joins_them() {
        assert_eq!(
            join_reference("127.0.0.1:5000/acc/x", "1").unwrap(),
            "127.0.0.1:5000/acc/x:1"
        );
        assert_eq!(
            join_reference("docker.io/library/busybox", "latest").unwrap(),
            "busybox:latest"
        );
        assert_eq!(join_reference("busybox:1", "").unwrap(), "busybox:1");
        assert_eq!(join_reference("busybox:1", "2").unwrap(), "busybox:2");
        let hex = "ab".repeat(32);
        assert_eq!(
            join_reference("busybox:1", &format!("sha256:{hex}")).unwrap(),
            format!("busybox@sha256:{hex}")
        );
        for (image, tag) in [
            ("busybox", "sha256:xyz"),
            ("busybox", "bad tag"),
            ("UP", "1"),
        ] {
            let err = join_reference(image, tag).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{image} {tag}: {err:?}");
        }
    }

    #[test]
    fn bad_references_are_named_in_the_error() {
        let err = parse_reference("Not//A:Valid:Ref").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("Not//A:Valid:Ref"), "{err}");
        assert_eq!(
            parse_reference("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }
}
