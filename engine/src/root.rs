//! Where kiln keeps its state when `--root` is not given (both faces default to it).

use std::path::PathBuf;

/// `/var/lib/kiln` for root, `$XDG_DATA_HOME/kiln` (or `~/.local/share/kiln`)
/// for everyone else, as rootful and rootless container tools do.
pub fn default_root() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/kiln");
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("kiln");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/kiln"),
        None => PathBuf::from("/var/lib/kiln"),
    }
}

fn is_root() -> bool {
    // The effective uid decides which files we may write; /proc/self/status is
    // read instead of calling geteuid so this module needs no unsafe and no libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
