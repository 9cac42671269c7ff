//! Named volumes: directories under `<root>/volumes/<name>/_data`, as docker
//! keeps them, bound into containers with `-v name:/path`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `kiln volume inspect` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    /// The volume's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Where its data lives on the host.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    /// Always `local`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Creation time (seconds since the epoch).
    #[serde(rename = "CreatedAt")]
    pub created: u64,
    /// Labels given at creation (records written before labels existed have none).
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. It also
/// keeps every name a single, harmless path component.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The volumes directory of a kiln root.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    /// Opens (creating) `<root>/volumes`.
    pub fn open(root: &Path) -> Result<Volumes> {
        let dir = root.join("volumes");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Volumes { dir })
    }

    fn check(name: &str) -> Result<()> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(Error::Invalid {
                what: "volume name",
                detail: format!("{name:?} (allowed: [a-zA-Z0-9][a-zA-Z0-9_.-]+)"),
            })
        }
    }

    /// Creates the volume (idempotent, as docker) and returns it.
    pub fn create(&self, name: &str) -> Result<Volume> {
        self.create_with(name, &BTreeMap::new())
    }

    /// Creates the volume with `labels` (an existing volume is returned as it is, as docker
    /// does).
    pub fn create_with(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<Volume> {
        Self::check(name)?;
        let d = self.dir.join(name);
        let data = d.join("_data");
        std::fs::create_dir_all(&data).map_err(|e| Error::io(&data, e))?;
        let meta = d.join("meta.json");
        if !meta.exists() {
            let v = Volume {
                name: name.into(),
                mountpoint: data.clone(),
                driver: "local".into(),
                created: crate::state::now(),
                labels: labels.clone(),
            };
            let text = serde_json::to_vec(&v).map_err(|e| Error::State {
                path: meta.clone(),
                detail: e.to_string(),
            })?;
            std::fs::write(&meta, text).map_err(|e| Error::io(&meta, e))?;
        }
        self.inspect(name)
    }

    /// Reads a volume's record.
    pub fn inspect(&self, name: &str) -> Result<Volume> {
        Self::check(name)?;
        let meta = self.dir.join(name).join("meta.json");
        let text =
            std::fs::read(&meta).map_err(|_| Error::NotFound(format!("no such volume: {name}")))?;
        serde_json::from_slice(&text).map_err(|e| Error::State {
            path: meta,
            detail: e.to_string(),
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        let mut v: Vec<Volume> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.inspect(&e.file_name().to_string_lossy()).ok())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Deletes a volume and its data (never following a link or crossing a mount).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.inspect(name)?;
        let d = self.dir.join(name);
        crate::state::remove_tree_one_fs(&d).map_err(|e| Error::io(&d, e))
    }

    /// The data directory of `name`, creating the volume when missing (as `docker run -v name:/x` does).
    pub fn data_dir(&self, name: &str) -> Result<PathBuf> {
        Ok(self.create(name)?.mountpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_walk_out_of_the_volumes_dir() {
        for bad in ["..", "../x", "a/b", "", "x", "-a", ".hidden"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name("accvol"));
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::open(t.path()).unwrap();
        assert!(v.create("../../etc").is_err());
        v.create("data1").unwrap();
        assert_eq!(v.list().len(), 1);
        v.remove("data1").unwrap();
        assert!(v.inspect("data1").is_err());
    }
}
