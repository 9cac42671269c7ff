//! Platforms (`linux/amd64`) and the predefined build args derived from them.

use std::fmt;

/// An OS/architecture pair in OCI spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture, GOARCH spelling, e.g. `amd64`.
    pub architecture: String,
    /// Variant, e.g. `v8` for arm64.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform kiln runs on (the only one it builds for: no emulation).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: (architecture == "arm64").then(|| "v8".to_string()),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('/');
        let os = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let architecture = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let variant = parts.next().map(str::to_ascii_lowercase);
        if parts.next().is_some() {
            return None;
        }
        let architecture = match architecture.as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            _ => architecture,
        };
        Some(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// Whether `other` names the same platform (arm64 with or without `v8`).
    pub fn matches(&self, other: &Platform) -> bool {
        let default_variant = |p: &Platform| match (p.architecture.as_str(), &p.variant) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.clone(),
        };
        self.os == other.os
            && self.architecture == other.architecture
            && default_variant(self) == default_variant(other)
    }

    /// The predefined ARGs for this platform with `prefix` `TARGET` or `BUILD`.
    pub fn args(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}PLATFORM"), self.to_string()),
            (format!("{prefix}OS"), self.os.clone()),
            (format!("{prefix}ARCH"), self.architecture.clone()),
            (
                format!("{prefix}VARIANT"),
                self.variant.clone().unwrap_or_default(),
            ),
        ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_like_containerd() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!p.matches(&Platform::parse("linux/amd64").unwrap()));
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }

    #[test]
    fn predefined_args_have_buildkits_names() {
        let p = Platform::parse("linux/amd64").unwrap();
        let args = p.args("TARGET");
        assert_eq!(args[0], ("TARGETPLATFORM".into(), "linux/amd64".into()));
        assert_eq!(args[2], ("TARGETARCH".into(), "amd64".into()));
        assert_eq!(args[3], ("TARGETVARIANT".into(), String::new()));
    }
}
