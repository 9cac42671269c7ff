//! Named volumes: create, list, inspect, remove, prune (`ROOT/volumes`), with docker's
//! filters and its `Volume` object for both faces.

use std::collections::BTreeMap;

use kiln_executor::volume::{Volume, Volumes};
use serde::Serialize;

use crate::containers::from_executor;
use crate::images::dangling_value;
use crate::{Engine, Error, Result};

/// What [`Engine::create_volume_with`] makes: docker's `VolumeCreateBody`.
#[derive(Debug, Clone, Default)]
pub struct VolumeCreate {
    /// The name; `None` (or empty) makes a 64-hex one, as docker's anonymous volumes.
    pub name: Option<String>,
    /// The driver: only `local` (or none).
    pub driver: Option<String>,
    /// Driver options: kiln's local volumes take none (no `type`/`device`/`o` mounts).
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Which volumes a listing or a prune keeps: docker's `name`, `label` and `dangling`
/// filters. The values of one key are alternatives; the keys must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFilter {
    /// Parts of the name (docker matches the name against each).
    pub names: Vec<String>,
    /// `key` or `key=value`, every one required.
    pub labels: Vec<String>,
    /// `Some(true)`: only volumes no container mounts; `Some(false)`: only those one
    /// does.
    pub dangling: Option<bool>,
}

impl VolumeFilter {
    /// The filter of docker's `key=value` pairs; an unknown key is `invalid filter 'key'`.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<VolumeFilter> {
        let mut filter = VolumeFilter::default();
        for (key, value) in pairs {
            match key {
                "name" => filter.names.push(value.to_string()),
                "label" => filter.labels.push(value.to_string()),
                "dangling" => filter.dangling = Some(dangling_value(value)?),
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            }
        }
        Ok(filter)
    }

    fn matches(&self, v: &Volume, in_use: impl Fn(&str) -> bool) -> bool {
        (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && self.labels.iter().all(|want| match want.split_once('=') {
                Some((k, val)) => v.labels.get(k).is_some_and(|have| have == val),
                None => v.labels.contains_key(want.as_str()),
            })
            && self.dangling.is_none_or(|d| d != in_use(&v.name))
    }
}

/// docker's `Volume` object (`volume inspect`, `GET /volumes/{name}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    /// The name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Where its data lives on the host.
    pub mountpoint: String,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Always `local`.
    pub scope: String,
    /// Driver options (kiln's volumes take none).
    pub options: BTreeMap<String, String>,
}

impl VolumeInfo {
    /// The docker object of a volume record.
    pub fn of(v: &Volume) -> VolumeInfo {
        VolumeInfo {
            name: v.name.clone(),
            driver: v.driver.clone(),
            mountpoint: v.mountpoint.display().to_string(),
            created_at: kiln_cache::image::rfc3339(v.created as i64),
            labels: v.labels.clone(),
            scope: "local".into(),
            options: BTreeMap::new(),
        }
    }
}

/// The bytes a volume's data takes on disk.
pub fn volume_size(v: &Volume) -> u64 {
    kiln_cache::snapshot::Snapshots::du(&v.mountpoint)
}

/// What [`Engine::prune_volumes`] did.
#[derive(Debug, Clone, Default)]
pub struct VolumePruneReport {
    /// The volumes removed.
    pub deleted: Vec<String>,
    /// Bytes their data took.
    pub space_reclaimed: u64,
}

impl Engine {
    fn volumes(&self) -> Result<Volumes> {
        Volumes::open(self.root()).map_err(from_executor)
    }

    /// Creates a volume (idempotent, as docker) and returns it; a bad name is
    /// [`crate::Error::Invalid`].
    pub fn create_volume(&self, name: &str) -> Result<Volume> {
        self.volumes()?.create(name).map_err(from_executor)
    }

    /// Creates a volume as docker's `POST /volumes/create` asks: a missing name is made up,
    /// a driver other than `local` or any driver option is [`Error::Invalid`].
    pub fn create_volume_with(&self, spec: &VolumeCreate) -> Result<Volume> {
        match spec.driver.as_deref() {
            None | Some("") | Some("local") => {}
            Some(other) => {
                return Err(Error::invalid(format!(
                    "volume driver {other:?} is not supported (kiln has only \"local\")"
                )))
            }
        }
        if !spec.driver_opts.is_empty() {
            let keys: Vec<&str> = spec.driver_opts.keys().map(String::as_str).collect();
            return Err(Error::invalid(format!(
                "volume driver options are not supported ({})",
                keys.join(", ")
            )));
        }
        let name = match spec.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => kiln_executor::state::new_id(),
        };
        self.volumes()?
            .create_with(&name, &spec.labels)
            .map_err(from_executor)
    }

    /// Every volume, by name.
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        Ok(self.volumes()?.list())
    }

    /// The volumes that pass `filter`, by name.
    pub fn list_volumes_filtered(&self, filter: &VolumeFilter) -> Result<Vec<Volume>> {
        let mounted = self.mounted_volumes()?;
        Ok(self
            .volumes()?
            .list()
            .into_iter()
            .filter(|v| filter.matches(v, |n| mounted.contains(n)))
            .collect())
    }

    /// A volume's record ([`crate::Error::NotFound`] when there is none).
    pub fn inspect_volume(&self, name: &str) -> Result<Volume> {
        self.volumes()?.inspect(name).map_err(from_executor)
    }

    /// Deletes a volume and its data.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        self.volumes()?.remove(name).map_err(from_executor)
    }

    /// Deletes a volume unless a container (running or not) mounts it ([`Error::Conflict`],
    /// docker's `volume is in use`); `force` deletes it all the same.
    pub fn remove_volume_checked(&self, name: &str, force: bool) -> Result<()> {
        self.inspect_volume(name)?;
        if !force && self.mounted_volumes()?.contains(name) {
            return Err(Error::Conflict(format!("remove {name}: volume is in use")));
        }
        self.remove_volume(name)
    }

    /// Removes every volume that passes `filter` and no container mounts.
    pub fn prune_volumes(&self, filter: &VolumeFilter) -> Result<VolumePruneReport> {
        let mut filter = filter.clone();
        filter.dangling = Some(true);
        let mut report = VolumePruneReport::default();
        for v in self.list_volumes_filtered(&filter)? {
            let size = volume_size(&v);
            self.remove_volume(&v.name)?;
            report.deleted.push(v.name);
            report.space_reclaimed += size;
        }
        Ok(report)
    }

    /// The names of volumes a container of this root (running or not, as docker counts
    /// them) mounts, from the containers' stored settings.
    pub fn mounted_volumes(&self) -> Result<std::collections::HashSet<String>> {
        let store = self.containers()?;
        let mut out = std::collections::HashSet::new();
        for c in store.list() {
            let Ok(settings) = crate::containers::ContainerSettings::load(&store.dir(&c.id)) else {
                continue;
            };
            for m in settings.mounts {
                if let crate::containers::ContainerMount::Bind {
                    volume: Some(name), ..
                } = m
                {
                    out.insert(name);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn volumes_round_trip_with_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        assert_eq!(engine.create_volume("data").unwrap().name, "data");
        assert_eq!(engine.list_volumes().unwrap().len(), 1);
        assert!(engine.inspect_volume("data").unwrap().mountpoint.is_dir());
        engine.remove_volume("data").unwrap();
        let e = engine.inspect_volume("data").unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert!(matches!(
            engine.create_volume("../x").unwrap_err(),
            Error::Invalid(_)
        ));
    }

    #[test]
    fn created_volumes_keep_labels_and_filter_by_them() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        let labelled = engine
            .create_volume_with(&VolumeCreate {
                name: Some("web-data".into()),
                labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                ..VolumeCreate::default()
            })
            .unwrap();
        assert_eq!(labelled.labels["app"], "web");
        let anonymous = engine.create_volume_with(&VolumeCreate::default()).unwrap();
        assert_eq!(anonymous.name.len(), 64);
        let names = |pairs: &[(&str, &str)]| -> Vec<String> {
            let f = VolumeFilter::parse(pairs.iter().copied()).unwrap();
            let listed = engine.list_volumes_filtered(&f).unwrap();
            listed.into_iter().map(|v| v.name).collect()
        };
        assert_eq!(names(&[("label", "app=web")]), ["web-data"]);
        assert_eq!(names(&[("name", "web")]), ["web-data"]);
        assert_eq!(names(&[("dangling", "true")]).len(), 2);
        assert!(names(&[("dangling", "false")]).is_empty());
        let e = VolumeFilter::parse([("driver", "local")]).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'driver'");
        let e = engine
            .create_volume_with(&VolumeCreate {
                driver: Some("nfs".into()),
                ..VolumeCreate::default()
            })
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");

        let info = serde_json::to_value(VolumeInfo::of(&labelled)).unwrap();
        assert_eq!(info["Scope"], "local");
        assert_eq!(info["Driver"], "local");
        assert!(info["CreatedAt"].as_str().unwrap().ends_with('Z'));

        std::fs::write(labelled.mountpoint.join("f"), vec![1u8; 4096]).unwrap();
        let pruned = engine
            .prune_volumes(&VolumeFilter::parse([("label", "app")]).unwrap())
            .unwrap();
        assert_eq!(pruned.deleted, ["web-data"]);
        assert!(pruned.space_reclaimed >= 4096);
        assert_eq!(engine.list_volumes().unwrap().len(), 1);
        engine
            .remove_volume_checked(&anonymous.name, false)
            .unwrap();
        assert!(engine
            .remove_volume_checked("web-data", false)
            .unwrap_err()
            .is_not_found());
    }
}
