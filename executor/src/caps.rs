//! Capabilities: docker's default set, `--cap-add`/`--cap-drop`, and
//! dropping to the final set inside the container.

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, Result};

/// Docker's default capability set (`CapEff 00000000a80425fb` in a container).
pub fn docker_default() -> CapsHashSet {
    use Capability::*;
    [
        CAP_CHOWN,
        CAP_DAC_OVERRIDE,
        CAP_FSETID,
        CAP_FOWNER,
        CAP_MKNOD,
        CAP_NET_RAW,
        CAP_SETGID,
        CAP_SETUID,
        CAP_SETFCAP,
        CAP_SETPCAP,
        CAP_NET_BIND_SERVICE,
        CAP_SYS_CHROOT,
        CAP_KILL,
        CAP_AUDIT_WRITE,
    ]
    .into_iter()
    .collect()
}

/// Parses a docker capability name: `NET_ADMIN`, `cap_net_admin` or `ALL`
/// (`None` for `ALL`).
pub fn parse_name(name: &str) -> Result<Option<Capability>> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>()
        .map(Some)
        .map_err(|_| Error::Invalid {
            what: "capability",
            detail: name.to_string(),
        })
}

/// Applies docker's `--cap-add` then `--cap-drop` rules to `base`, in docker's
/// order: `ALL` in add grants every capability the kernel knows, `ALL` in
/// drop starts from nothing and the adds come back.
pub fn adjust(base: CapsHashSet, add: &[String], drop: &[String]) -> Result<CapsHashSet> {
    let mut set = base;
    let mut drop_all = false;
    for d in drop {
        match parse_name(d)? {
            None => drop_all = true,
            Some(c) => {
                set.remove(&c);
            }
        }
    }
    if drop_all {
        set.clear();
    }
    for a in add {
        match parse_name(a)? {
            None => set.extend(caps::runtime::thread_all_supported()),
            Some(c) => {
                set.insert(c);
            }
        }
    }
    Ok(set)
}

/// The bitmask of a set, as /proc/self/status prints it.
pub fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// Drops every capability outside `keep` from the bounding set. Needs
/// CAP_SETPCAP, so it runs before the user switch.
pub(crate) fn drop_bounding(keep: &CapsHashSet) -> Result<()> {
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::Setup(format!("drop {cap} from the bounding set: {e}")))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable to `keep` (root in the container)
/// or clears them (any other user, as docker leaves non-root processes).
/// Ambient stays empty.
pub(crate) fn set_process_caps(keep: &CapsHashSet, root: bool) -> Result<()> {
    let set: CapsHashSet = if root {
        keep.iter().copied().collect()
    } else {
        caps::CapsHashSet::new()
    };
    let err = |e: caps::errors::CapsError| Error::Setup(format!("set capabilities: {e}"));
    caps::clear(None, CapSet::Ambient).map_err(err)?;
    caps::set(None, CapSet::Inheritable, &caps::CapsHashSet::new()).map_err(err)?;
    caps::set(None, CapSet::Effective, &set).map_err(err)?;
    caps::set(None, CapSet::Permitted, &set).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_matches_dockers_mask() {
        assert_eq!(mask(&docker_default()), 0xa80425fb);
    }

    #[test]
    fn add_and_drop_follow_docker() {
        let s = adjust(
            docker_default(),
            &["net_admin".into()],
            &["CAP_CHOWN".into()],
        )
        .unwrap();
        assert!(s.contains(&Capability::CAP_NET_ADMIN));
        assert!(!s.contains(&Capability::CAP_CHOWN));
        let s = adjust(docker_default(), &["KILL".into()], &["ALL".into()]).unwrap();
        assert_eq!(s, CapsHashSet::from([Capability::CAP_KILL]));
        assert!(adjust(docker_default(), &["NOPE".into()], &[]).is_err());
    }
}
