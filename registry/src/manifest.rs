//! Manifest media types, platforms, and reading manifests and indexes.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The media types kiln asks for, in docker's order.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
];
/// Largest manifest or index kiln reads (as containerd: 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBytes {
    /// The sha256 digest of `bytes`.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The raw JSON (its digest is over these exact bytes).
    pub bytes: Vec<u8>,
}

/// A manifest, read.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// An image manifest (OCI or Docker schema 2).
    Image(Box<ImageManifest>),
    /// An index or manifest list.
    Index(Box<ImageIndex>),
}

/// Whether `media_type` is an index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Decides the media type from the `Content-Type` header and the JSON itself, then parses.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<(String, Parsed)> {
    let invalid = |message: String| Error::Invalid {
        what: "manifest".into(),
        message,
    };
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    let field = json
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let media_type = header.or(field).unwrap_or_else(|| {
        if json.get("manifests").is_some() {
            OCI_INDEX.to_string()
        } else {
            OCI_MANIFEST.to_string()
        }
    });
    let parsed = match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Parsed::Index(Box::new(
            serde_json::from_value(json).map_err(|e| invalid(format!("bad index: {e}")))?,
        )),
        OCI_MANIFEST | DOCKER_MANIFEST => Parsed::Image(Box::new(
            serde_json::from_value(json).map_err(|e| invalid(format!("bad manifest: {e}")))?,
        )),
        other => return Err(Error::UnsupportedMediaType(other.to_string())),
    };
    Ok((media_type, parsed))
}

/// A descriptor's digest, validated.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    let value = d.digest().to_string();
    Digest::parse(&value).map_err(|source| Error::Digest { value, source })
}

/// A descriptor's size.
pub fn descriptor_size(d: &Descriptor) -> Result<u64> {
    Ok(d.size())
}

/// An OS/architecture/variant triple (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform kiln runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// Normalized variant: arm64's default is v8 (as containerd normalizes).
    fn effective_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, v) => v,
        }
    }

    /// Whether an index entry for `other` can serve this platform.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.effective_variant() == other.effective_variant())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a `--platform` value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant]")]
pub struct PlatformError(String);

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(PlatformError(s.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

fn descriptor_platform(d: &Descriptor) -> Option<Platform> {
    let p = d.platform().as_ref()?;
    Some(Platform {
        os: p.os().to_string(),
        architecture: p.architecture().to_string(),
        variant: p.variant().clone(),
    })
}

/// Picks the manifest for `wanted` from an index: the first matching entry, preferring one
/// whose variant equals the wanted (or default) variant exactly.
pub fn select_platform<'a>(index: &'a ImageIndex, wanted: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<(&Descriptor, Platform)> = index
        .manifests()
        .iter()
        .filter_map(|d| descriptor_platform(d).map(|p| (d, p)))
        .filter(|(_, p)| wanted.matches(p))
        .collect();
    candidates
        .iter()
        .find(|(_, p)| p.effective_variant() == wanted.effective_variant())
        .or_else(|| candidates.first())
        .map(|(d, _)| *d)
}

/// The platforms an index lists, for error messages.
pub fn list_platforms(index: &ImageIndex) -> String {
    let names: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(descriptor_platform)
        .map(|p| p.to_string())
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_json(platforms: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": DOCKER_MANIFEST,
                    "digest": format!("sha256:{:064x}", i),
                    "size": 100,
                    "platform": p,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": manifests,
        }))
        .unwrap()
    }

    #[test]
    fn selects_platform_from_docker_manifest_list() {
        let bytes = index_json(&[
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("windows", "amd64", None),
        ]);
        let (mt, parsed) = parse(Some("application/json"), &bytes).unwrap();
        assert_eq!(mt, DOCKER_MANIFEST_LIST);
        let Parsed::Index(index) = parsed else {
            panic!("not an index")
        };
        let pick =
            |p: &str| select_platform(&index, &p.parse().unwrap()).map(|d| d.digest().to_string());
        assert_eq!(pick("linux/amd64").unwrap(), format!("sha256:{:064x}", 3));
        assert_eq!(pick("linux/arm64").unwrap(), format!("sha256:{:064x}", 2));
        assert_eq!(pick("linux/arm/v7").unwrap(), format!("sha256:{:064x}", 1));
        assert_eq!(pick("windows/amd64").unwrap(), format!("sha256:{:064x}", 4));
        assert_eq!(pick("linux/s390x"), None);
        assert!(list_platforms(&index).contains("linux/arm/v7"));
    }

    #[test]
    fn media_type_from_header_field_or_shape() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        assert_eq!(parse(None, m).unwrap().0, OCI_MANIFEST);
        assert_eq!(parse(Some(DOCKER_MANIFEST), m).unwrap().0, DOCKER_MANIFEST);
        assert!(matches!(
            parse(
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                m
            ),
            Err(Error::UnsupportedMediaType(_))
        ));
        assert!(matches!(parse(None, b"{"), Err(Error::Invalid { .. })));
        assert!(matches!(
            parse(Some(OCI_INDEX), m),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn platform_strings() {
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }
}
