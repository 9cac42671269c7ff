//! Image formats and names: OCI image manifest, index and config, and Docker
//! v2 schema 2 manifest and manifest list (read both; OCI written by default,
//! docker media types on request), through oci-spec's types. Also docker's
//! familiar image names and RFC 3339 times.

use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker v2 schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Largest manifest, index or config read into memory.
pub const MAX_JSON: u64 = 16 << 20;

/// Which media types to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// OCI image-spec types (the default).
    #[default]
    Oci,
    /// Docker v2 schema 2 types.
    Docker,
}

/// A parsed manifest (OCI or docker schema 2, which share a shape).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest's media type as written.
    pub media_type: String,
    /// oci-spec's view of it.
    pub inner: ImageManifest,
}

impl Manifest {
    /// The config descriptor's digest.
    pub fn config_digest(&self) -> Result<Digest> {
        Digest::try_from(self.inner.config().digest())
    }
    /// Each layer's digest, size and media type, bottom first.
    pub fn layers(&self) -> Result<Vec<(Digest, u64, String)>> {
        self.inner
            .layers()
            .iter()
            .map(|d| {
                Ok((
                    Digest::try_from(d.digest())?,
                    d.size(),
                    d.media_type().to_string(),
                ))
            })
            .collect()
    }
}

/// What a manifest-ish blob turned out to be.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// A single-platform image manifest.
    Manifest(Box<Manifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

/// Parses a manifest, index or manifest list, telling them apart by
/// `mediaType` (or by shape when it is absent, as OCI allows).
pub fn parse_manifest(bytes: &[u8]) -> Result<Parsed> {
    let v: serde_json::Value = serde_json::from_slice(bytes)?;
    let mt = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    let is_index =
        mt == OCI_INDEX || mt == DOCKER_LIST || (mt.is_empty() && v.get("manifests").is_some());
    if is_index {
        let idx: ImageIndex = serde_json::from_value(v)
            .map_err(|e| Error::Format(format!("bad image index: {e}")))?;
        return Ok(Parsed::Index(Box::new(idx)));
    }
    if !(mt == OCI_MANIFEST || mt == DOCKER_MANIFEST || mt.is_empty()) {
        return Err(Error::Format(format!(
            "unsupported manifest media type {mt:?}"
        )));
    }
    if v.get("schemaVersion").and_then(|s| s.as_u64()) != Some(2) {
        return Err(Error::Format(
            "only schemaVersion 2 manifests are supported".into(),
        ));
    }
    let inner: ImageManifest =
        serde_json::from_value(v).map_err(|e| Error::Format(format!("bad image manifest: {e}")))?;
    let media_type = if mt.is_empty() {
        OCI_MANIFEST.to_string()
    } else {
        mt
    };
    Ok(Parsed::Manifest(Box::new(Manifest { media_type, inner })))
}

/// The entry of an index for this machine (linux and kiln's architecture),
/// else the only entry.
pub fn pick_platform(idx: &ImageIndex) -> Result<&Descriptor> {
    let arch = host_arch();
    let ms = idx.manifests();
    ms.iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .or_else(|| if ms.len() == 1 { ms.first() } else { None })
        .ok_or_else(|| Error::Format(format!("the index has no linux/{arch} image")))
}

/// kiln's architecture in OCI (GOARCH) spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Parses an image config, keeping docker-only fields out of the way.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|e| Error::Format(format!("bad image config: {e}")))
}

/// The diff IDs an image config lists, bottom first.
pub fn diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse())
        .collect()
}

/// Builds a manifest for a config and layers with the chosen media types.
pub fn build_manifest(
    types: MediaTypes,
    config: (&Digest, u64),
    layers: &[(Digest, u64, String)],
) -> Result<Vec<u8>> {
    let (mt, cmt) = match types {
        MediaTypes::Oci => (OCI_MANIFEST, OCI_CONFIG),
        MediaTypes::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
    };
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": cmt, "digest": config.0.to_string(), "size": config.1},
        "layers": layers.iter().map(|(d, s, m)| serde_json::json!({"mediaType": m, "digest": d.to_string(), "size": s})).collect::<Vec<_>>(),
    });
    // Round trip through oci-spec to be sure what we write is what we read.
    let bytes = serde_json::to_vec(&v)?;
    parse_manifest(&bytes)?;
    Ok(bytes)
}

/// A media type value as oci-spec spells it.
pub fn media_type(s: &str) -> MediaType {
    MediaType::from(s)
}

/// Docker's familiar form of an image name: `repo:tag`, with `docker.io/` and
/// `library/` dropped and `:latest` added when no tag is given.
pub fn normalize_name(s: &str) -> Result<String> {
    if s.is_empty() {
        return Err(Error::InvalidReference(s.into(), "empty name"));
    }
    if s.contains('@') {
        return Err(Error::InvalidReference(
            s.into(),
            "digest references cannot be names",
        ));
    }
    let (repo, tag) = split_tag(s);
    let repo = repo
        .strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    if repo.is_empty()
        || repo.len() > 255
        || !repo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
        || repo.starts_with(['.', '-', '/', '_'])
        || repo.ends_with(['.', '-', '/', '_'])
    {
        return Err(Error::InvalidReference(
            s.into(),
            "repository name must be lowercase letters, digits and separators",
        ));
    }
    let tag = tag.unwrap_or("latest");
    if tag.is_empty()
        || tag.len() > 128
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        || tag.starts_with(['.', '-'])
    {
        return Err(Error::InvalidReference(s.into(), "invalid tag"));
    }
    Ok(format!("{repo}:{tag}"))
}

/// Splits `repo[:tag]` (a ':' inside a registry host:port is not a tag).
pub fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Formats unix seconds as RFC 3339 UTC (`2006-01-02T15:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses the date and time of an RFC 3339 string to unix seconds (fractions
/// and offsets other than Z are ignored: only used for "N hours ago").
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

/// The time to write into configs and history: `SOURCE_DATE_EPOCH` when set
/// (reproducible builds), else now.
pub fn created_now() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| i64::from_str(v.trim()).ok())
        .unwrap_or_else(crate::fsutil::now_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_like_docker() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(
            normalize_name("docker.io/library/busybox:1").unwrap(),
            "busybox:1"
        );
        assert_eq!(
            normalize_name("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            normalize_name("localhost:5000/a/b:x").unwrap(),
            "localhost:5000/a/b:x"
        );
        for bad in ["", "Busybox", "a:b:c!", "a@sha256:00", "/a", "a:"] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_roundtrip() {
        for t in [0, 951782400, 1795000000, 4102444800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn docker_and_oci_manifests_parse() {
        let d = Digest::of(b"c");
        for t in [MediaTypes::Oci, MediaTypes::Docker] {
            let b = build_manifest(
                t,
                (&d, 1),
                &[(
                    d.clone(),
                    2,
                    "application/vnd.oci.image.layer.v1.tar".into(),
                )],
            )
            .unwrap();
            let Parsed::Manifest(m) = parse_manifest(&b).unwrap() else {
                panic!()
            };
            assert_eq!(m.config_digest().unwrap(), d);
            assert_eq!(m.layers().unwrap().len(), 1);
        }
        assert!(parse_manifest(b"{\"schemaVersion\":1}").is_err());
    }
}
