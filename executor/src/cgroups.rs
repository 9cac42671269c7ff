//! cgroup limits (memory, pids, cpu) on cgroup v1, v2 or the hybrid of both
//! (this host: v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified).
//! Each controller goes where the host actually has it: a v1 hierarchy
//! named after it, else the unified hierarchy when it lists the controller.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::Resources;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroups made for one container; removed by [`Cgroups::remove`].
#[derive(Debug, Default, Clone)]
pub struct Cgroups {
    /// Directories made, each with the file a process joins through.
    dirs: Vec<PathBuf>,
    /// Limits the host could not apply.
    pub skipped: Vec<&'static str>,
}

fn v1(controller: &str) -> Option<PathBuf> {
    let p = Path::new(CGROUP_ROOT).join(controller);
    p.join("cgroup.procs").exists().then_some(p)
}

fn v2_with(controller: &str) -> Option<PathBuf> {
    for base in [
        Path::new(CGROUP_ROOT).to_path_buf(),
        Path::new(CGROUP_ROOT).join("unified"),
    ] {
        if let Ok(list) = std::fs::read_to_string(base.join("cgroup.controllers")) {
            if list.split_whitespace().any(|c| c == controller) {
                return Some(base);
            }
        }
    }
    None
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::io(path, e))
}

impl Cgroups {
    /// Creates `kiln/<id>` in each hierarchy `res` sets a limit for and
    /// writes the limits; nothing when it sets none (a RUN step without
    /// limits pays no cgroup attach). A controller the host lacks is listed
    /// in `skipped`. Devices need no cgroup: see `mounts::remount`.
    pub fn create(id: &str, res: &Resources) -> Result<Cgroups> {
        let mut cg = Cgroups::default();
        let wants: [(&'static str, Option<u64>); 3] = [
            ("memory", res.memory),
            ("pids", res.pids),
            ("cpu", res.cpu_millis),
        ];
        for (ctrl, value) in wants {
            let Some(value) = value else { continue };
            if let Some(base) = v1(ctrl) {
                let dir = base.join("kiln").join(id);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                cg.dirs.push(dir.clone());
                match ctrl {
                    "memory" => {
                        write(&dir.join("memory.limit_in_bytes"), &value.to_string())?;
                        // Swap as much as docker allows by default (memory*2 total); ignore when no swap accounting.
                        let _ = write(
                            &dir.join("memory.memsw.limit_in_bytes"),
                            &(value.saturating_mul(2)).to_string(),
                        );
                    }
                    "pids" => write(&dir.join("pids.max"), &value.to_string())?,
                    _ => {
                        write(&dir.join("cpu.cfs_period_us"), "100000")?;
                        write(&dir.join("cpu.cfs_quota_us"), &(value * 100).to_string())?;
                    }
                }
            } else if let Some(base) = v2_with(ctrl) {
                let parent = base.join("kiln");
                std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
                let _ = write(&base.join("cgroup.subtree_control"), &format!("+{ctrl}"));
                let _ = write(&parent.join("cgroup.subtree_control"), &format!("+{ctrl}"));
                let dir = parent.join(id);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                if !cg.dirs.contains(&dir) {
                    cg.dirs.push(dir.clone());
                }
                match ctrl {
                    "memory" => write(&dir.join("memory.max"), &value.to_string())?,
                    "pids" => write(&dir.join("pids.max"), &value.to_string())?,
                    _ => write(&dir.join("cpu.max"), &format!("{} 100000", value * 100))?,
                }
            } else {
                cg.skipped.push(ctrl);
            }
        }
        Ok(cg)
    }

    /// The `cgroup.procs` files a process writes `0` to in order to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Moves process `pid` into every cgroup (for `kiln exec`).
    pub fn join(&self, pid: i32) -> Result<()> {
        for f in self.procs_files() {
            write(&f, &pid.to_string())?;
        }
        Ok(())
    }

    /// Removes the directories (they must be empty: the container is gone).
    pub fn remove(&self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }

    /// The cgroups of container `id` as made earlier (for exec and cleanup).
    pub fn existing(id: &str) -> Cgroups {
        let mut cg = Cgroups::default();
        for ctrl in ["memory", "pids", "cpu"] {
            if let Some(base) = v1(ctrl) {
                let d = base.join("kiln").join(id);
                if d.is_dir() {
                    cg.dirs.push(d);
                }
            }
        }
        for base in [
            Path::new(CGROUP_ROOT).to_path_buf(),
            Path::new(CGROUP_ROOT).join("unified"),
        ] {
            let d = base.join("kiln").join(id);
            if d.join("cgroup.controllers").exists() && !cg.dirs.contains(&d) {
                cg.dirs.push(d);
            }
        }
        cg
    }
}
