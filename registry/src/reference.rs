//! Image references in docker's grammar, normalized as docker normalizes them.
//!
//! A port of the grammar and of `ParseNormalizedNamed` from distribution/reference:
//! `busybox` is `docker.io/library/busybox:latest`, `host:port/repo:tag@sha256:...` keeps
//! its host, and the first path component is a registry host when it contains `.` or `:`,
//! is `localhost`, or has uppercase letters (repository paths are lowercase).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;

use crate::digest::{Digest, DigestError};

/// The registry a name without a host refers to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy name, rewritten to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of single-component names on Docker Hub.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// Longest allowed name (host and path), as in distribution/reference.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a string is not a valid image reference. Messages match docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not follow the reference grammar.
    #[error("invalid reference format: {input:?}")]
    InvalidFormat {
        /// The rejected input.
        input: String,
    },
    /// The repository path has uppercase letters.
    #[error("invalid reference format: repository name ({name}) must be lowercase")]
    NameNotLowercase {
        /// The offending repository path.
        name: String,
    },
    /// The input is empty.
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    /// The name is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error("invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    /// The input is a bare 64-hex-digit identifier, which docker reserves for image IDs.
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier {
        /// The rejected input.
        input: String,
    },
    /// The `@digest` part is not a valid digest.
    #[error("invalid reference format: {0}")]
    Digest(#[from] DigestError),
}

/// A parsed, normalized image reference: registry host, repository path, tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

struct Grammar {
    reference: Regex,
    identifier: Regex,
}

fn grammar() -> &'static Grammar {
    static GRAMMAR: OnceLock<Grammar> = OnceLock::new();
    GRAMMAR.get_or_init(|| {
        // Go's \w is ASCII-only; spell it out so Rust's Unicode \w does not widen the grammar.
        let alphanumeric = "[a-z0-9]+";
        let separator = "(?:[._]|__|[-]+)";
        let path_component = format!("{alphanumeric}(?:{separator}{alphanumeric})*");
        let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
        let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
        let host = format!("(?:{domain_name}|{ipv6})");
        let domain_and_port = format!("{host}(?::[0-9]+)?");
        let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
        let remote_name = format!("{path_component}(?:/{path_component})*");
        let name = format!("(?:({domain_and_port})/)?({remote_name})");
        let reference = format!("^({name})(?::({tag}))?(?:@({digest}))?$");
        Grammar {
            reference: Regex::new(&reference).expect("reference grammar compiles"),
            identifier: Regex::new("^[a-f0-9]{64}$").expect("identifier grammar compiles"),
        }
    })
}

/// Splits a name into registry host and remainder the way docker's `splitDockerDomain` does.
fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, mut remote) = match name.split_once('/') {
        None => (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        ),
        Some((first, rest)) => {
            if first == "localhost" {
                (first.to_string(), rest.to_string())
            } else if first == LEGACY_DEFAULT_DOMAIN {
                (DEFAULT_DOMAIN.to_string(), rest.to_string())
            } else if first.contains(['.', ':']) || first.to_lowercase() != first {
                (first.to_string(), rest.to_string())
            } else {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            }
        }
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_REPO_PREFIX}{remote}");
    }
    (domain, remote)
}

impl Reference {
    /// Parses a reference as `docker pull` does (`ParseNormalizedNamed`), without adding a tag.
    pub fn parse_normalized(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if grammar().identifier.is_match(input) {
            return Err(ReferenceError::HexIdentifier {
                input: input.to_string(),
            });
        }
        let (domain, remainder) = split_docker_domain(input);
        let remote = remainder.split(':').next().unwrap_or("");
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::NameNotLowercase {
                name: remote.to_string(),
            });
        }
        Self::parse_full(&format!("{domain}/{remainder}"), input)
    }

    /// Parses a reference as docker does and adds `:latest` when it has neither tag nor digest.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let mut reference = Self::parse_normalized(input)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(reference)
    }

    /// `Parse` of distribution/reference on a fully qualified string; `input` is for errors.
    fn parse_full(full: &str, input: &str) -> Result<Reference, ReferenceError> {
        let g = grammar();
        let Some(caps) = g.reference.captures(full) else {
            if g.reference.is_match(&full.to_lowercase()) {
                return Err(ReferenceError::NameNotLowercase {
                    name: full.to_string(),
                });
            }
            return Err(ReferenceError::InvalidFormat {
                input: input.to_string(),
            });
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let digest = match caps.get(5) {
            Some(m) => Some(Digest::parse(m.as_str())?),
            None => None,
        };
        Ok(Reference {
            domain: caps.get(2).map_or("", |m| m.as_str()).to_string(),
            path: caps.get(3).map_or("", |m| m.as_str()).to_string(),
            tag: caps.get(4).map(|m| m.as_str().to_string()),
            digest,
        })
    }

    /// The registry host as written in the name (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// Drops the tag (a digest reference then names only its digest).
    pub fn clear_tag(&mut self) {
        self.tag = None;
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The fully qualified name without tag or digest (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form docker prints (`busybox:latest`, `me/app:1`, `host:5000/app:1`).
    pub fn familiar(&self) -> String {
        let mut name = if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        };
        self.push_suffix(&mut name);
        name
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_str());
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_docker_hub_names() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("me/app"), "docker.io/me/app:latest");
        assert_eq!(full("me/team/app:v1"), "docker.io/me/team/app:v1");
        assert_eq!(
            full("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("index.docker.io/me/app"), "docker.io/me/app:latest");
    }

    #[test]
    fn detects_domains_as_docker_does() {
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!((r.domain(), r.path()), ("localhost", "app"));
        let r = Reference::parse("localhost:5000/app:1").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("localhost:5000", "app", Some("1"))
        );
        let r = Reference::parse("example.com/a/b").unwrap();
        assert_eq!((r.domain(), r.path()), ("example.com", "a/b"));
        let r = Reference::parse("127.0.0.1:5000/acc/bb:1").unwrap();
        assert_eq!((r.domain(), r.path()), ("127.0.0.1:5000", "acc/bb"));
        let r = Reference::parse("[::1]:5000/app").unwrap();
        assert_eq!((r.domain(), r.path()), ("[::1]:5000", "app"));
        // An uppercase first component can only be a host.
        let r = Reference::parse("Example/app").unwrap();
        assert_eq!((r.domain(), r.path()), ("Example", "app"));
        // Without . or : or uppercase it is a Docker Hub namespace.
        let r = Reference::parse("myregistry/app").unwrap();
        assert_eq!((r.domain(), r.path()), ("docker.io", "myregistry/app"));
        // A single component is never a host, even "localhost".
        assert_eq!(full("localhost"), "docker.io/library/localhost:latest");
        // "docker.io" on a registry other than Docker Hub keeps the single component.
        assert_eq!(full("example.com/app"), "example.com/app:latest");
    }

    #[test]
    fn tags_and_digests() {
        let r = Reference::parse(&format!("host:5000/repo:tag@{D}")).unwrap();
        assert_eq!(r.domain(), "host:5000");
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert_eq!(r.manifest_reference(), D);
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None, "a digest-only reference gets no default tag");
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), "latest");
        let long_tag = "t".repeat(128);
        assert!(Reference::parse(&format!("app:{long_tag}")).is_ok());
        assert!(Reference::parse(&format!("app:{long_tag}x")).is_err());
        assert!(Reference::parse("app:_under.score-ok").is_ok());
        assert!(Reference::parse("app:.bad").is_err());
    }

    #[test]
    fn familiar_form() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(f("me/app:1"), "me/app:1");
        assert_eq!(f("docker.io/library/a/b:1"), "library/a/b:1");
        assert_eq!(f("localhost:5000/app:1"), "localhost:5000/app:1");
    }

    #[test]
    fn rejects_invalid_references() {
        let err = |s: &str| Reference::parse(s).unwrap_err();
        assert!(matches!(
            err("Not//A:Valid:Ref"),
            ReferenceError::NameNotLowercase { .. }
        ));
        assert!(matches!(err("a//b"), ReferenceError::InvalidFormat { .. }));
        assert!(matches!(
            err("a/b:t:u"),
            ReferenceError::InvalidFormat { .. }
        ));
        assert_eq!(err(""), ReferenceError::Empty);
        assert!(matches!(
            err("Uppercase"),
            ReferenceError::NameNotLowercase { .. }
        ));
        assert!(matches!(
            err("example.com/Upper"),
            ReferenceError::NameNotLowercase { .. }
        ));
        assert!(matches!(
            err("-leading"),
            ReferenceError::InvalidFormat { .. }
        ));
        assert!(matches!(
            err("trailing-"),
            ReferenceError::InvalidFormat { .. }
        ));
        assert!(matches!(err("a/"), ReferenceError::InvalidFormat { .. }));
        assert!(matches!(err("a b"), ReferenceError::InvalidFormat { .. }));
        assert!(matches!(err("app:"), ReferenceError::InvalidFormat { .. }));
        assert!(matches!(err("app@"), ReferenceError::InvalidFormat { .. }));
        assert!(matches!(
            err("app@sha256:abc"),
            ReferenceError::InvalidFormat { .. }
        ));
        assert!(matches!(
            err(&format!("app@sha256:{}", "a".repeat(63))),
            ReferenceError::Digest(DigestError::InvalidLength)
        ));
        assert!(matches!(
            err(&format!("app@md5:{}", "a".repeat(32))),
            ReferenceError::Digest(DigestError::Unsupported)
        ));
        assert!(matches!(
            err(&"f".repeat(64)),
            ReferenceError::HexIdentifier { .. }
        ));
        // Non-ASCII word characters are not in the grammar.
        assert!(matches!(
            err("app:tä"),
            ReferenceError::InvalidFormat { .. }
        ));
        let long = format!("example.com/{}", "a".repeat(NAME_TOTAL_LENGTH_MAX));
        assert_eq!(err(&long), ReferenceError::NameTooLong);
        assert!(Reference::parse(&format!("a/{}", "b".repeat(240))).is_ok());
        // The error message names the problem in docker's words.
        assert!(err("Not//A:Valid:Ref")
            .to_string()
            .starts_with("invalid reference format"));
    }

    /// Cases from distribution/reference's normalize and reference tests.
    #[test]
    fn distribution_reference_cases() {
        let ok = |s: &str, domain: &str, path: &str, tag: Option<&str>| {
            let r = Reference::parse_normalized(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((r.domain(), r.path(), r.tag()), (domain, path, tag), "{s}");
        };
        ok(
            "foo_bar.com:8080",
            "docker.io",
            "library/foo_bar.com",
            Some("8080"),
        );
        ok(
            "foo/foo_bar.com:8080",
            "docker.io",
            "foo/foo_bar.com",
            Some("8080"),
        );
        ok(
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com",
            "myimage",
            Some("xn--n3h.com"),
        );
        ok("Xn--n3h.com:18080/foo", "Xn--n3h.com:18080", "foo", None);
        ok("localhost:5000/foo/bar", "localhost:5000", "foo/bar", None);
        ok("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None);
        ok(
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::1]:5000",
            "repo",
            Some("tag"),
        );
        ok("a.b.c:5000/x/y/z:v", "a.b.c:5000", "x/y/z", Some("v"));
        ok("docker.io/library/foo", "docker.io", "library/foo", None);
        ok(
            "index.docker.io/library/foo",
            "docker.io",
            "library/foo",
            None,
        );
        let with_digest = format!("a:b@{D}");
        let r = Reference::parse_normalized(&with_digest).unwrap();
        assert_eq!((r.path(), r.tag()), ("library/a", Some("b")));
        assert_eq!(r.digest().map(Digest::as_str), Some(D));

        let bad = |s: &str| {
            Reference::parse_normalized(s)
                .map(|r| r.to_string())
                .expect_err(s)
        };
        // An unbracketed IPv6 address is not a host; a zone index is not allowed.
        bad("2001:db8::1/repo");
        bad("[fe80::1%eth0]:5000/repo");
        bad("docker.io/Library/foo");
        bad("aa/asdf$$^/aa");
        bad("http://example.com/repo");
        bad(":justtag");
        bad("@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        assert!(matches!(
            bad(&format!("validname@invaliddigest:{}", "f".repeat(64))),
            ReferenceError::Digest(DigestError::Unsupported)
        ));
        assert!(matches!(
            bad("repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            ReferenceError::Digest(DigestError::InvalidLength)
        ));
    }

    #[test]
    fn separators_follow_the_grammar() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a/b.c-d__e"] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a..b", "a___b", "a._b", "a/.b", "_a", "a/b/"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
