//! `--chown` names and ids to numeric ids, looked up in the destination
//! root's `/etc/passwd` and `/etc/group`, read inside that root.

use std::io::Read;

use super::root::Root;
use super::{ErrorKind, FileOpError};
use crate::op::Owner;

/// BuildKit refuses user files larger than this; so does kiln.
const MAX_USER_FILE: u64 = 10 << 20;

/// Numeric owner of created files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Resolves `owner` as BuildKit does: a numeric user alone gives
/// `uid:uid`, a user name alone its primary group from /etc/passwd; a
/// name not found (or a missing file) is an error, as the Dockerfile
/// reference says.
pub(crate) fn resolve(root: &Root, owner: &Owner, action: &str) -> Result<Ids, FileOpError> {
    let err = |kind| FileOpError {
        action: action.to_string(),
        path: String::new(),
        kind,
    };
    let (uid, mut gid) = match owner.user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => {
            let text = read_user_file(root, "etc/passwd", action)?;
            find(&text, &owner.user, 2, Some(3))
                .ok_or_else(|| err(ErrorKind::UnknownUser(owner.user.clone())))?
        }
    };
    if let Some(group) = &owner.group {
        gid = match group.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let text = read_user_file(root, "etc/group", action)?;
                find(&text, group, 2, None)
                    .ok_or_else(|| err(ErrorKind::UnknownGroup(group.clone())))?
                    .0
            }
        };
    }
    Ok(Ids { uid, gid })
}

fn read_user_file(root: &Root, path: &str, action: &str) -> Result<String, FileOpError> {
    let io = |e| FileOpError::io(action, format!("/{path}"), e);
    let file = root.open_file_in(path.as_bytes()).map_err(io)?;
    let mut file = std::fs::File::from(file);
    if !file.metadata().map_err(io)?.is_file() {
        return Err(FileOpError {
            action: action.to_string(),
            path: format!("/{path}"),
            kind: ErrorKind::NotRegular,
        });
    }
    let mut text = Vec::new();
    (&mut file)
        .take(MAX_USER_FILE + 1)
        .read_to_end(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_USER_FILE {
        return Err(FileOpError {
            action: action.to_string(),
            path: format!("/{path}"),
            kind: ErrorKind::TooLarge,
        });
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// The ids in fields `a` (and `b`) of the first line whose first field is
/// `name`.
fn find(text: &str, name: &str, a: usize, b: Option<usize>) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.first()?.trim() != name {
            return None;
        }
        let x = f.get(a)?.trim().parse().ok()?;
        let y = match b {
            Some(b) => f.get(b)?.trim().parse().ok()?,
            None => 0,
        };
        Some((x, y))
    })
}
