//! Resolving docker's `-u user[:group]` against the image's /etc/passwd and
//! /etc/group. The files are read inside the container after pivot_root, so
//! a symlinked /etc/passwd can only point at another file of the image.

use crate::error::{Error, Result};

/// A resolved user: what the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership, plus any given).
    pub additional_gids: Vec<u32>,
    /// Home directory (for HOME when the image sets none).
    pub home: String,
}

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || line.starts_with('#') {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || line.starts_with('#') {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) as docker
/// does, given the contents of /etc/passwd and /etc/group (empty when absent).
/// `extra_gids` are added to the supplementary groups (`--group-add`).
pub fn resolve(spec: &str, passwd: &str, group: &str, extra_gids: &[u32]) -> Result<ResolvedUser> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => users
            .iter()
            .find(|e| e.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".into(),
            })),
        Err(_) => users.iter().find(|e| e.name == user_part).cloned(),
    }
    .ok_or_else(|| {
        Error::NotFound(format!(
            "unable to find user {user_part}: no matching entries in passwd file"
        ))
    })?;
    let gid = match group_part {
        None | Some("") => entry.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        },
    };
    let mut additional_gids = vec![gid];
    if group_part.is_none() && !entry.name.is_empty() {
        for g in &groups {
            if g.members.contains(&entry.name) && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    for g in extra_gids {
        if !additional_gids.contains(g) {
            additional_gids.push(*g);
        }
    }
    Ok(ResolvedUser {
        uid: entry.uid,
        gid,
        additional_gids,
        home: if entry.home.is_empty() {
            "/".into()
        } else {
            entry.home
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nwheel:x:10:alice,bob\nalice:x:1000:\n";

    #[test]
    fn names_resolve_with_their_groups() {
        let u = resolve("alice", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/alice"));
        assert_eq!(u.additional_gids, vec![1000, 10]);
        let n = resolve("nobody", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((n.uid, n.gid), (65534, 65534));
    }

    #[test]
    fn numbers_need_no_passwd_entry() {
        let u = resolve("1234:5678", "", "", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1234, 5678, vec![5678])
        );
        let u = resolve("1000", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let r = resolve("", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn group_names_and_unknowns() {
        assert_eq!(resolve("alice:wheel", PASSWD, GROUP, &[]).unwrap().gid, 10);
        assert!(resolve("mallory", PASSWD, GROUP, &[]).is_err());
        assert!(resolve("alice:nogrp", PASSWD, GROUP, &[]).is_err());
        assert_eq!(
            resolve("0", PASSWD, GROUP, &[44]).unwrap().additional_gids,
            vec![0, 44]
        );
    }
}
