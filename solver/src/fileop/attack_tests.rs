//! Escape attempts against the file operations (the CVE classes of
//! FACTS.md: symlinks in the destination or the context, `..`, tar-slip,
//! symlink-then-write and hard links in archives). Each test plants a
//! canary outside the roots, on the host, and checks its real state after
//! the attack: same content, same link count, no new file beside it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use super::tests::{copy, cp, fx, put, run, Fx};
use super::*;
use crate::op::{CopyAction, FileAction, Owner};

/// A host directory outside every root with a canary file in it.
struct Canary {
    dir: PathBuf,
    file: PathBuf,
}

fn canary(f: &Fx) -> Canary {
    let dir = f.base.join("outside");
    let file = dir.join("canary");
    put(&file, "safe", 0o644);
    Canary { dir, file }
}

impl Canary {
    /// The host is untouched: the canary's content, mode and link count,
    /// and the directory holds nothing else.
    fn check(&self) {
        assert_eq!(fs::read_to_string(&self.file).unwrap(), "safe");
        let m = fs::symlink_metadata(&self.file).unwrap();
        assert!(m.is_file());
        assert_eq!(m.nlink(), 1, "no hard link was made to the canary");
        assert_eq!(m.mode() & 0o7777, 0o644);
        let names: Vec<_> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["canary"], "nothing was written beside the canary");
    }

    /// The absolute host path as a string, the way an attacker writes it.
    fn abs(&self, p: &Path) -> String {
        p.to_str().unwrap().to_string()
    }
}

fn inside(f: &Fx, host: &Path) -> PathBuf {
    f.dest.join(host.strip_prefix("/").unwrap())
}

#[test]
fn dest_symlink_to_an_absolute_host_dir_resolves_inside_the_root() {
    let f = fx();
    let c = canary(&f);
    put(&f.ctx.join("a"), "pwned", 0o644);
    symlink(&c.dir, f.dest.join("evil")).unwrap();
    copy(&f, cp(&["a"], "/evil/")).unwrap();
    copy(&f, cp(&["a"], "/evil/canary")).unwrap();
    c.check();
    assert_eq!(
        fs::read_to_string(inside(&f, &c.dir).join("a")).unwrap(),
        "pwned"
    );
    assert_eq!(fs::read_to_string(inside(&f, &c.file)).unwrap(), "pwned");
}

#[test]
fn dest_symlink_with_relative_escape_stops_at_the_root() {
    let f = fx();
    let c = canary(&f);
    put(&f.ctx.join("a"), "pwned", 0o644);
    symlink("../../../../../../../..", f.dest.join("up")).unwrap();
    let rel = c
        .dir
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    copy(&f, cp(&["a"], &format!("/up/{rel}/canary"))).unwrap();
    c.check();
    assert_eq!(fs::read_to_string(inside(&f, &c.file)).unwrap(), "pwned");
}

#[test]
fn dest_final_symlink_to_a_host_file_is_followed_inside_the_root() {
    let f = fx();
    let c = canary(&f);
    put(&f.ctx.join("a"), "pwned", 0o644);
    symlink(&c.file, f.dest.join("target")).unwrap();
    copy(&f, cp(&["a"], "/target")).unwrap();
    c.check();
    assert_eq!(fs::read_to_string(inside(&f, &c.file)).unwrap(), "pwned");
}

#[test]
fn symlinked_parent_dir_in_dest_stays_inside() {
    let f = fx();
    let c = canary(&f);
    put(&f.ctx.join("d/canary"), "pwned", 0o644);
    put(&f.ctx.join("d/new"), "pwned", 0o644);
    symlink(&c.dir, f.dest.join("etc")).unwrap();
    copy(&f, cp(&["d"], "/etc/")).unwrap();
    copy(&f, cp(&["d/new"], "/etc/sub/deeper/x")).unwrap();
    c.check();
    assert!(inside(&f, &c.dir).join("sub/deeper/x").is_file());
}

#[test]
fn dotdot_in_dest_is_clamped_at_the_root() {
    let f = fx();
    let c = canary(&f);
    put(&f.ctx.join("a"), "pwned", 0o644);
    copy(&f, cp(&["a"], "/../../../outside/canary")).unwrap();
    copy(&f, cp(&["a"], "../../outside/")).unwrap();
    c.check();
    assert_eq!(
        fs::read_to_string(f.dest.join("outside/canary")).unwrap(),
        "pwned"
    );
}

#[test]
fn nested_dest_symlinks_are_replaced_or_refused_never_written_through() {
    let f = fx();
    let c = canary(&f);
    put(&f.ctx.join("d/canary"), "pwned", 0o644);
    put(&f.ctx.join("d/sub/x"), "pwned", 0o644);
    fs::create_dir(f.dest.join("app")).unwrap();
    // A file over a symlink replaces the link.
    symlink(&c.file, f.dest.join("app/canary")).unwrap();
    // A directory over a symlink to a host dir is refused (BuildKit's
    // "cannot copy to non-directory").
    symlink(&c.dir, f.dest.join("app/sub")).unwrap();
    let e = copy(&f, cp(&["d"], "/app")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotADirectory), "{e}");
    c.check();
    fs::remove_file(f.dest.join("app/sub")).unwrap();
    copy(&f, cp(&["d"], "/app")).unwrap();
    c.check();
    assert_eq!(
        fs::read_to_string(f.dest.join("app/canary")).unwrap(),
        "pwned"
    );
    assert!(fs::symlink_metadata(f.dest.join("app/canary"))
        .unwrap()
        .is_file());
}

#[test]
fn context_symlink_to_outside_is_copied_as_a_link_and_never_followed_out() {
    let f = fx();
    let c = canary(&f);
    symlink(&c.file, f.ctx.join("evil")).unwrap();
    symlink("../outside/canary", f.ctx.join("rel")).unwrap();
    symlink(&c.dir, f.ctx.join("evildir")).unwrap();
    put(&f.ctx.join("d/ok"), "ok", 0o644);
    symlink(&c.file, f.ctx.join("d/evil")).unwrap();
    // Named directly: followed inside the context only, where it is missing.
    for s in ["evil", "rel", "evildir/canary", "evi?"] {
        let e = copy(&f, cp(&[s], "/x")).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::NotFound | ErrorKind::Io(_)),
            "{s}: {e}"
        );
    }
    // Inside a copied directory: the link itself.
    copy(&f, cp(&["d"], "/d")).unwrap();
    assert_eq!(fs::read_link(f.dest.join("d/evil")).unwrap(), c.file);
    assert!(!f.dest.join("x").exists());
    c.check();
}

#[test]
fn context_symlink_resolving_inside_the_context_is_followed() {
    let f = fx();
    let c = canary(&f);
    // `/outside/canary` inside the context root is the context's own file.
    put(&f.ctx.join("outside/canary"), "ctx", 0o644);
    symlink("/outside/canary", f.ctx.join("abs")).unwrap();
    copy(&f, cp(&["abs"], "/got")).unwrap();
    assert_eq!(fs::read_to_string(f.dest.join("got")).unwrap(), "ctx");
    c.check();
}

#[test]
fn mkfile_mkdir_rm_symlink_through_dest_symlinks_stay_inside() {
    let f = fx();
    let c = canary(&f);
    symlink(&c.dir, f.dest.join("d")).unwrap();
    symlink(&c.file, f.dest.join("file")).unwrap();
    // Without the in-root twin of the host dir, BuildKit fails (the parent
    // of an os.WriteFile must exist); make it so the writes succeed.
    fs::create_dir_all(inside(&f, &c.dir)).unwrap();
    run(
        &f,
        vec![
            FileAction::Mkfile {
                path: "/file".into(),
                mode: 0o600,
                data: b"pwned".to_vec(),
                owner: None,
            },
            FileAction::Mkfile {
                path: "/d/canary".into(),
                mode: 0o600,
                data: b"pwned".to_vec(),
                owner: None,
            },
            FileAction::Mkdir {
                path: "/d/newdir/x".into(),
                mode: 0o755,
                parents: true,
                owner: None,
            },
            FileAction::Symlink {
                target: "/".into(),
                path: "/d/link".into(),
            },
            FileAction::Rm {
                path: "/d/canary".into(),
                allow_not_found: false,
            },
        ],
    )
    .unwrap();
    c.check();
    assert!(inside(&f, &c.dir).join("newdir/x").is_dir());
    assert!(fs::symlink_metadata(inside(&f, &c.dir).join("link")).is_ok());
    // rm of the link itself removes the link, not its target.
    run(
        &f,
        vec![FileAction::Rm {
            path: "/file".into(),
            allow_not_found: false,
        }],
    )
    .unwrap();
    c.check();
}

#[test]
fn chown_names_are_read_from_the_roots_passwd_not_the_hosts() {
    let f = fx();
    let c = canary(&f);
    let host_passwd = f.base.join("outside-passwd");
    put(&host_passwd, "evil:x:666:666::/:/bin/sh\n", 0o644);
    fs::create_dir(f.dest.join("etc")).unwrap();
    symlink(&host_passwd, f.dest.join("etc/passwd")).unwrap();
    put(&f.ctx.join("a"), "A", 0o644);
    let e = copy(
        &f,
        CopyAction {
            owner: Some(Owner {
                user: "evil".into(),
                group: None,
            }),
            ..cp(&["a"], "/a")
        },
    )
    .unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Io(_) | ErrorKind::UnknownUser(_)),
        "{e}"
    );
    c.check();
}

/// A tar built by hand so that names the `tar` crate would refuse to
/// write (`..`, absolute) can be planted.
struct RawTar(Vec<u8>);

impl RawTar {
    fn new() -> RawTar {
        RawTar(Vec::new())
    }

    fn entry(&mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn add(&mut self, f: &Fx, dest: &str) -> Result<(), FileOpError> {
        let mut bytes = self.0.clone();
        bytes.extend(std::iter::repeat_n(0u8, 1024));
        let mut file = fs::File::create(f.ctx.join("evil.tar")).unwrap();
        file.write_all(&bytes).unwrap();
        copy(
            f,
            CopyAction {
                unpack_archives: true,
                ..cp(&["evil.tar"], dest)
            },
        )
    }
}

#[test]
fn tar_dotdot_entries_are_clamped_inside_the_destination() {
    let f = fx();
    let c = canary(&f);
    let deep = format!("../../../../../../../..{}", c.file.to_str().unwrap());
    RawTar::new()
        .entry(&deep, tar::EntryType::Regular, "", b"pwned")
        .entry("../../outside/new", tar::EntryType::Regular, "", b"pwned")
        .add(&f, "/x/")
        .unwrap();
    c.check();
    assert_eq!(
        fs::read_to_string(f.dest.join("x").join(c.file.strip_prefix("/").unwrap())).unwrap(),
        "pwned"
    );
    assert!(f.dest.join("x/outside/new").is_file());
}

#[test]
fn tar_absolute_entries_land_inside_the_destination() {
    let f = fx();
    let c = canary(&f);
    RawTar::new()
        .entry(
            c.abs(&c.file).as_str(),
            tar::EntryType::Regular,
            "",
            b"pwned",
        )
        .add(&f, "/")
        .unwrap();
    c.check();
    assert_eq!(fs::read_to_string(inside(&f, &c.file)).unwrap(), "pwned");
}

#[test]
fn tar_symlink_then_write_through_it_stays_inside() {
    let f = fx();
    let c = canary(&f);
    let abs = c.abs(&c.dir);
    RawTar::new()
        .entry("lnk", tar::EntryType::Symlink, &abs, b"")
        .entry("lnk/canary", tar::EntryType::Regular, "", b"pwned")
        .entry("lnk/new", tar::EntryType::Regular, "", b"pwned")
        .entry("up", tar::EntryType::Symlink, "../../../../../../..", b"")
        .entry("up/outside/canary", tar::EntryType::Regular, "", b"pwned")
        .add(&f, "/t/")
        .unwrap();
    c.check();
    // Resolved with the destination directory as the root, as BuildKit's
    // chrooted untar does.
    let in_t = f.dest.join("t").join(c.dir.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(in_t.join("canary")).unwrap(), "pwned");
    assert_eq!(
        fs::read_to_string(f.dest.join("t/outside/canary")).unwrap(),
        "pwned"
    );
}

#[test]
fn tar_hardlink_to_outside_cannot_reach_the_host() {
    let f = fx();
    let c = canary(&f);
    let abs = c.abs(&c.file);
    let deep = format!("../../../../../../..{abs}");
    for target in [abs.as_str(), deep.as_str(), "../outside/canary"] {
        let r = RawTar::new()
            .entry("hl", tar::EntryType::Link, target, b"")
            .add(&f, "/h/");
        // The target does not exist inside the destination: an error.
        assert!(r.is_err(), "{target}");
        c.check();
    }
    // A symlink to the host plus a hard link to that symlink links the
    // symlink itself, never the host file.
    RawTar::new()
        .entry("s", tar::EntryType::Symlink, &abs, b"")
        .entry("hl2", tar::EntryType::Link, "s", b"")
        .add(&f, "/h2/")
        .unwrap();
    c.check();
    assert!(fs::symlink_metadata(f.dest.join("h2/hl2"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn tar_entry_replacing_a_dest_symlink_does_not_write_through_it() {
    let f = fx();
    let c = canary(&f);
    fs::create_dir(f.dest.join("t")).unwrap();
    symlink(&c.file, f.dest.join("t/file")).unwrap();
    RawTar::new()
        .entry("file", tar::EntryType::Regular, "", b"pwned")
        .add(&f, "/t/")
        .unwrap();
    c.check();
    assert_eq!(fs::read_to_string(f.dest.join("t/file")).unwrap(), "pwned");
}

#[test]
fn context_paths_through_symlinked_dirs_and_dotdot_stay_in_the_context() {
    let f = fx();
    let c = canary(&f);
    symlink("../../../../../..", f.ctx.join("up")).unwrap();
    symlink(&c.dir, f.ctx.join("evildir")).unwrap();
    let rel = c
        .file
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for s in [
        format!("up/{rel}"),
        format!("../../../../{rel}"),
        "evildir/canary".to_string(),
    ] {
        let e = copy(&f, cp(&[&s], "/x")).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NotFound), "{s}: {e}");
    }
    for s in ["evildir/*", "*/canary", "up/*/canary"] {
        let e = copy(&f, cp(&[s], "/w/")).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NoMatch), "{s}: {e}");
    }
    let par = CopyAction {
        parents: true,
        ..cp(&["evildir/canary"], "/p/")
    };
    let e = copy(&f, par).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotFound), "{e}");
    let par = CopyAction {
        parents: true,
        ..cp(&["**/canary"], "/q/")
    };
    copy(&f, par).unwrap();
    assert!(!f.dest.join("q/evildir/canary").exists());
    assert!(!f.dest.join("x").exists());
    c.check();
}

#[test]
fn rm_with_dotdot_is_clamped_and_a_symlink_loop_is_an_error() {
    let f = fx();
    let c = canary(&f);
    let e = run(
        &f,
        vec![FileAction::Rm {
            path: "/../../outside/canary".into(),
            allow_not_found: false,
        }],
    )
    .unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::NotFound | ErrorKind::Io(_)),
        "{e}"
    );
    symlink("b", f.dest.join("a")).unwrap();
    symlink("a", f.dest.join("b")).unwrap();
    put(&f.ctx.join("x"), "x", 0o644);
    let e = copy(&f, cp(&["x"], "/a")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
    let e = copy(&f, cp(&["x"], "/a/b/c")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
    c.check();
}
