//! Semantic tests of the file operations, one per rule of the Dockerfile
//! reference and BuildKit's fileop, on real files in temp dirs (as root).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::op::{CopyAction, FileAction, Owner};

/// A context, a destination root and another stage, side by side.
pub(super) struct Fx {
    _tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub ctx: PathBuf,
    pub dest: PathBuf,
    pub stage: PathBuf,
}

pub(super) fn fx() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let (ctx, dest, stage) = (base.join("ctx"), base.join("dest"), base.join("stage"));
    for d in [&ctx, &dest, &stage] {
        fs::create_dir(d).unwrap();
    }
    Fx {
        _tmp: tmp,
        base,
        ctx,
        dest,
        stage,
    }
}

/// Writes `data` at `p` with `mode`, creating parents.
pub(super) fn put(p: &Path, data: &str, mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A COPY from the context (input 1) as the Dockerfile frontend makes it.
pub(super) fn cp(sources: &[&str], dest: &str) -> CopyAction {
    CopyAction {
        input: 1,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.to_string(),
        owner: None,
        mode: None,
        exclude: Vec::new(),
        parents: false,
        unpack_archives: false,
        follow_symlinks: true,
    }
}

/// Runs actions with inputs [dest, context, stage].
pub(super) fn run(f: &Fx, actions: Vec<FileAction>) -> Result<(), FileOpError> {
    run_with(f, actions, None, None)
}

pub(super) fn run_with(
    f: &Fx,
    actions: Vec<FileAction>,
    ignore: Option<&Matcher>,
    epoch: Option<i64>,
) -> Result<(), FileOpError> {
    let inputs = [
        CopySource::rootfs(&f.dest),
        CopySource::context(&f.ctx, ignore),
        CopySource::rootfs(&f.stage),
    ];
    let env = FileOpEnv {
        dest_root: &f.dest,
        inputs: &inputs,
        epoch,
    };
    apply(&env, &actions)
}

pub(super) fn copy(f: &Fx, c: CopyAction) -> Result<(), FileOpError> {
    run(f, vec![FileAction::Copy(c)])
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn file_to_new_name_creates_parents_0755() {
    let f = fx();
    put(&f.ctx.join("a.txt"), "A", 0o640);
    copy(&f, cp(&["a.txt"], "/x/y/new")).unwrap();
    assert_eq!(read(&f.dest.join("x/y/new")), "A");
    assert_eq!(mode(&f.dest.join("x/y/new")), 0o640);
    assert_eq!(mode(&f.dest.join("x")), 0o755);
    assert!(f.dest.join("x/y").is_dir());
}

#[test]
fn file_into_dir_with_trailing_slash_or_existing_dir() {
    let f = fx();
    put(&f.ctx.join("a.txt"), "A", 0o644);
    copy(&f, cp(&["a.txt"], "/x/")).unwrap();
    assert_eq!(read(&f.dest.join("x/a.txt")), "A");
    fs::create_dir(f.dest.join("y")).unwrap();
    copy(&f, cp(&["a.txt"], "/y")).unwrap();
    assert_eq!(read(&f.dest.join("y/a.txt")), "A");
    // Relative and leading-`..` sources stay in the context.
    copy(&f, cp(&["../../a.txt"], "/z")).unwrap();
    assert_eq!(read(&f.dest.join("z")), "A");
}

#[test]
fn directory_contents_are_copied_not_the_directory() {
    let f = fx();
    put(&f.ctx.join("dir/f"), "F", 0o600);
    put(&f.ctx.join("dir/sub/g"), "G", 0o755);
    put(&f.dest.join("d/old"), "O", 0o644);
    copy(&f, cp(&["dir/"], "/d")).unwrap();
    assert_eq!(read(&f.dest.join("d/f")), "F");
    assert_eq!(read(&f.dest.join("d/sub/g")), "G");
    assert_eq!(
        read(&f.dest.join("d/old")),
        "O",
        "merged with what was there"
    );
    assert!(!f.dest.join("d/dir").exists());
    assert_eq!(mode(&f.dest.join("d/sub/g")), 0o755);
}

#[test]
fn wildcards_match_like_go_filepath_match() {
    let f = fx();
    for n in [
        "a.txt",
        "b.txt",
        "c.md",
        "sub/d.txt",
        "index.js",
        "arr[0].txt",
    ] {
        put(&f.ctx.join(n), n, 0o644);
    }
    copy(&f, cp(&["*.txt"], "/o/")).unwrap();
    let mut got: Vec<_> = fs::read_dir(f.dest.join("o"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["a.txt", "arr[0].txt", "b.txt"]);
    copy(&f, cp(&["index.?s", "arr[[]0].txt", "*/d.txt"], "/p/")).unwrap();
    assert!(f.dest.join("p/index.js").is_file());
    assert!(f.dest.join("p/arr[0].txt").is_file());
    assert!(f.dest.join("p/d.txt").is_file());
}

#[test]
fn no_match_and_missing_source_are_errors_naming_the_source() {
    let f = fx();
    let e = copy(&f, cp(&["*.nothing"], "/o/")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NoMatch), "{e}");
    assert!(e.to_string().contains("*.nothing"), "{e}");
    let e = copy(&f, cp(&["missing.txt"], "/o/")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotFound), "{e}");
    assert!(e.to_string().contains("missing.txt"), "{e}");
    let e = copy(&f, cp(&["[bad"], "/o/")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::BadPattern), "{e}");
}

#[test]
fn several_sources_need_a_directory_destination() {
    let f = fx();
    put(&f.ctx.join("a"), "A", 0o644);
    put(&f.ctx.join("b"), "B", 0o644);
    let e = copy(&f, cp(&["a", "b"], "/out")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NeedDirDest), "{e}");
    let e = copy(&f, cp(&["*"], "/out")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NeedDirDest), "{e}");
    copy(&f, cp(&["a", "b"], "/out/")).unwrap();
    assert_eq!(read(&f.dest.join("out/b")), "B");
}

#[test]
fn modes_and_mtimes_kept_or_epoch() {
    let f = fx();
    put(&f.ctx.join("d/x"), "X", 0o4751);
    fs::set_permissions(f.ctx.join("d"), fs::Permissions::from_mode(0o710)).unwrap();
    let t = fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
    fs::File::options()
        .write(true)
        .open(f.ctx.join("d/x"))
        .unwrap()
        .set_times(t)
        .unwrap();
    copy(&f, cp(&["."], "/c/")).unwrap();
    let m = fs::metadata(f.dest.join("c/d/x")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4751);
    assert_eq!(m.mtime(), 1_000_000);
    assert_eq!(mode(&f.dest.join("c/d")), 0o710);
    run_with(
        &f,
        vec![FileAction::Copy(cp(&["d"], "/e/"))],
        None,
        Some(42),
    )
    .unwrap();
    assert_eq!(fs::metadata(f.dest.join("e/x")).unwrap().mtime(), 42);
    assert_eq!(fs::metadata(f.dest.join("e")).unwrap().mtime(), 42);
}

#[test]
fn trees_past_the_batch_limits_keep_every_file_and_directory_time() {
    // More directories and files than one batch of pending copies holds (copy.rs's
    // FLUSH_DIRS and FLUSH_FILES), nested, with a mode and an mtime per directory that
    // the files created in it must not disturb.
    let f = fx();
    let dir_time = |i: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000 + i);
    let mut dirs = Vec::new();
    for top in 0..3 {
        for sub in 0..60 {
            let d = f.ctx.join(format!("t{top}/s{sub}"));
            for n in 0..25 {
                put(&d.join(format!("f{n}")), &format!("{top}/{sub}/{n}"), 0o640);
            }
            dirs.push(d);
        }
        dirs.push(f.ctx.join(format!("t{top}")));
    }
    for (i, d) in dirs.iter().enumerate() {
        fs::set_permissions(
            d,
            fs::Permissions::from_mode(0o750 - (i as u32 % 2) * 0o200),
        )
        .unwrap();
        fs::File::open(d)
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(dir_time(i as u64)))
            .unwrap();
    }
    copy(&f, cp(&["."], "/c/")).unwrap();
    for top in 0..3 {
        for sub in 0..60 {
            for n in 0..25 {
                let p = f.dest.join(format!("c/t{top}/s{sub}/f{n}"));
                assert_eq!(read(&p), format!("{top}/{sub}/{n}"));
            }
        }
    }
    for (i, d) in dirs.iter().enumerate() {
        let copied = f.dest.join("c").join(d.strip_prefix(&f.ctx).unwrap());
        let m = fs::metadata(&copied).unwrap();
        assert_eq!(
            m.mode() & 0o7777,
            0o750 - (i as u32 % 2) * 0o200,
            "{}",
            copied.display()
        );
        assert_eq!(m.mtime(), 2_000_000 + i as i64, "{}", copied.display());
    }
}

#[test]
fn symlinks_copied_as_links_but_a_named_one_is_followed() {
    let f = fx();
    put(&f.ctx.join("dir/real"), "R", 0o644);
    symlink("real", f.ctx.join("dir/link")).unwrap();
    symlink("dir/real", f.ctx.join("top")).unwrap();
    copy(&f, cp(&["dir"], "/d")).unwrap();
    assert_eq!(
        fs::read_link(f.dest.join("d/link")).unwrap(),
        Path::new("real")
    );
    copy(&f, cp(&["top"], "/t")).unwrap();
    let m = fs::symlink_metadata(f.dest.join("t")).unwrap();
    assert!(m.is_file());
    assert_eq!(read(&f.dest.join("t")), "R");
    let mut nofollow = cp(&["top"], "/u");
    nofollow.follow_symlinks = false;
    copy(&f, nofollow).unwrap();
    assert_eq!(
        fs::read_link(f.dest.join("u")).unwrap(),
        Path::new("dir/real")
    );
}

#[test]
fn hardlinks_within_one_copy_are_kept() {
    let f = fx();
    put(&f.ctx.join("d/a"), "H", 0o644);
    fs::hard_link(f.ctx.join("d/a"), f.ctx.join("d/b")).unwrap();
    copy(&f, cp(&["d"], "/h")).unwrap();
    let a = fs::metadata(f.dest.join("h/a")).unwrap();
    let b = fs::metadata(f.dest.join("h/b")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_ne!(a.ino(), fs::metadata(f.ctx.join("d/a")).unwrap().ino());
}

#[test]
fn context_owner_never_leaks_but_a_stage_owner_is_kept() {
    let f = fx();
    put(&f.ctx.join("a"), "A", 0o644);
    put(&f.stage.join("a"), "S", 0o644);
    std::os::unix::fs::chown(f.ctx.join("a"), Some(1234), Some(4321)).unwrap();
    std::os::unix::fs::chown(f.stage.join("a"), Some(1234), Some(4321)).unwrap();
    copy(&f, cp(&["a"], "/ctx")).unwrap();
    let m = fs::metadata(f.dest.join("ctx")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    copy(
        &f,
        CopyAction {
            input: 2,
            ..cp(&["a"], "/stage")
        },
    )
    .unwrap();
    let m = fs::metadata(f.dest.join("stage")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 4321));
}

#[test]
fn chown_by_id_and_by_name_from_the_destination() {
    let f = fx();
    put(&f.ctx.join("d/a"), "A", 0o644);
    put(
        &f.dest.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        0o644,
    );
    put(&f.dest.join("etc/group"), "root:x:0:\nstaff:x:50:\n", 0o644);
    let ids = |p: &str| {
        let m = fs::symlink_metadata(f.dest.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    let own = |user: &str, group: Option<&str>| {
        Some(Owner {
            user: user.into(),
            group: group.map(Into::into),
        })
    };
    copy(
        &f,
        CopyAction {
            owner: own("55", None),
            ..cp(&["d"], "/n/p/")
        },
    )
    .unwrap();
    assert_eq!(ids("n/p/a"), (55, 55), "a uid alone gives gid = uid");
    assert_eq!(ids("n"), (55, 55), "created parents get the owner too");
    copy(
        &f,
        CopyAction {
            owner: own("app", None),
            ..cp(&["d/a"], "/app")
        },
    )
    .unwrap();
    assert_eq!(ids("app"), (1000, 1001), "a name gives its primary group");
    copy(
        &f,
        CopyAction {
            owner: own("app", Some("staff")),
            ..cp(&["d/a"], "/s")
        },
    )
    .unwrap();
    assert_eq!(ids("s"), (1000, 50));
    copy(
        &f,
        CopyAction {
            owner: own("7", Some("8")),
            ..cp(&["d/a"], "/n78")
        },
    )
    .unwrap();
    assert_eq!(ids("n78"), (7, 8));
    let e = copy(
        &f,
        CopyAction {
            owner: own("nobody", None),
            ..cp(&["d/a"], "/x")
        },
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnknownUser(_)), "{e}");
    let e = copy(
        &f,
        CopyAction {
            owner: own("app", Some("nogroup")),
            ..cp(&["d/a"], "/x")
        },
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnknownGroup(_)), "{e}");
}

#[test]
fn chmod_octal_and_symbolic_on_files_and_dirs() {
    let f = fx();
    put(&f.ctx.join("d/x.sh"), "X", 0o700);
    put(&f.ctx.join("d/sub/y"), "Y", 0o600);
    fs::set_permissions(f.ctx.join("d/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    let with = |m: &str, dest: &str| CopyAction {
        mode: Some(m.into()),
        ..cp(&["d"], dest)
    };
    copy(&f, with("640", "/o/p/")).unwrap();
    assert_eq!(mode(&f.dest.join("o/p/x.sh")), 0o640);
    assert_eq!(
        mode(&f.dest.join("o/p/sub")),
        0o640,
        "BuildKit applies it to dirs too"
    );
    assert_eq!(
        mode(&f.dest.join("o")),
        0o640,
        "and to the parents it creates"
    );
    copy(&f, with("u=rwX,go=rX", "/s/")).unwrap();
    assert_eq!(mode(&f.dest.join("s/sub")), 0o755);
    assert_eq!(mode(&f.dest.join("s/sub/y")), 0o644);
    assert_eq!(mode(&f.dest.join("s/x.sh")), 0o755);
    let e = copy(&f, with("8", "/z/")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::BadChmod(_)), "{e}");
}

#[test]
fn exclude_patterns_relative_to_the_source() {
    let f = fx();
    for n in [
        "d/a.md",
        "d/b.txt",
        "d/sub/c.md",
        "d/skip/x",
        "home.txt",
        "home.md",
    ] {
        put(&f.ctx.join(n), n, 0o644);
    }
    let ex = |p: &[&str], src: &[&str], dest: &str| CopyAction {
        exclude: p.iter().map(|s| s.to_string()).collect(),
        ..cp(src, dest)
    };
    copy(&f, ex(&["*.md", "skip"], &["d"], "/e/")).unwrap();
    assert!(!f.dest.join("e/a.md").exists());
    assert!(f.dest.join("e/b.txt").exists());
    assert!(f.dest.join("e/sub/c.md").exists(), "`*` does not cross /");
    assert!(!f.dest.join("e/skip").exists());
    copy(&f, ex(&["**/*.md"], &["d"], "/f/")).unwrap();
    assert!(!f.dest.join("f/sub/c.md").exists());
    copy(&f, ex(&["*.md"], &["hom*"], "/g/")).unwrap();
    assert!(f.dest.join("g/home.txt").exists());
    assert!(
        !f.dest.join("g/home.md").exists(),
        "as the reference's example"
    );
}

#[test]
fn dockerignore_hides_context_paths() {
    let f = fx();
    for n in ["keep", "secret.key", "logs/a.log", "logs/keep.log"] {
        put(&f.ctx.join(n), n, 0o644);
    }
    let m = Matcher::from_patterns(["*.key", "logs", "!logs/keep.log"]).unwrap();
    run_with(
        &f,
        vec![FileAction::Copy(cp(&["."], "/c/"))],
        Some(&m),
        None,
    )
    .unwrap();
    assert!(f.dest.join("c/keep").exists());
    assert!(!f.dest.join("c/secret.key").exists());
    assert!(!f.dest.join("c/logs/a.log").exists());
    assert!(f.dest.join("c/logs/keep.log").exists());
    let e = run_with(
        &f,
        vec![FileAction::Copy(cp(&["secret.key"], "/k"))],
        Some(&m),
        None,
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotFound), "{e}");
}

#[test]
fn parents_keep_the_source_directories() {
    let f = fx();
    for n in [
        "x/a.txt",
        "y/a.txt",
        "x/y/b.txt",
        "x/y/c.md",
        "src/a.txt",
        "src/x/b.txt",
        "src/x/y/c.txt",
        "src/x/d.md",
    ] {
        put(&f.ctx.join(n), n, 0o644);
    }
    let par = |src: &[&str], dest: &str| CopyAction {
        parents: true,
        ..cp(src, dest)
    };
    copy(&f, par(&["./x/a.txt", "./y/a.txt"], "/parents/")).unwrap();
    assert_eq!(read(&f.dest.join("parents/x/a.txt")), "x/a.txt");
    assert_eq!(read(&f.dest.join("parents/y/a.txt")), "y/a.txt");
    copy(&f, par(&["./x/./y/*.txt"], "/pivot/")).unwrap();
    assert!(f.dest.join("pivot/y/b.txt").exists());
    assert!(!f.dest.join("pivot/y/c.md").exists());
    assert!(!f.dest.join("pivot/x").exists());
    copy(&f, par(&["./src/**/*.txt"], "/deep/")).unwrap();
    for n in ["src/a.txt", "src/x/b.txt", "src/x/y/c.txt"] {
        assert!(f.dest.join("deep").join(n).exists(), "{n}");
    }
    assert!(!f.dest.join("deep/src/x/d.md").exists());
    let e = copy(&f, par(&["./nope/a.txt"], "/e/")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotFound), "{e}");
}

fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(5);
    h.set_gid(6);
    h.set_mtime(77);
    h.set_size(0);
    b.append_data(&mut h, "top/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o640);
    h.set_uid(5);
    h.set_gid(6);
    h.set_mtime(88);
    h.set_size(5);
    b.append_data(&mut h, "top/file", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_unpacks_local_tars_of_every_compression() {
    let f = fx();
    let raw = tar_bytes();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let bz = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &raw[..], &mut out).unwrap();
        out
    };
    let zst = zstd::encode_all(&raw[..], 1).unwrap();
    for (name, data) in [
        ("a.tar", raw),
        ("a.tgz", gz),
        ("a.bz", bz),
        ("a.xz", xz),
        ("a.zst", zst),
    ] {
        fs::write(f.ctx.join(name), data).unwrap();
        let dest = format!("/{name}.out");
        copy(
            &f,
            CopyAction {
                unpack_archives: true,
                ..cp(&[name], &dest)
            },
        )
        .unwrap();
        let file = f.dest.join(format!("{name}.out/top/file"));
        assert_eq!(read(&file), "hello", "{name}");
        let m = fs::metadata(&file).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
            (0o640, 5, 6, 88)
        );
        let d = fs::metadata(f.dest.join(format!("{name}.out/top"))).unwrap();
        assert_eq!((d.mode() & 0o7777, d.mtime()), (0o750, 77), "{name}");
    }
    // COPY never unpacks.
    copy(&f, cp(&["a.tar"], "/copied.tar")).unwrap();
    assert!(f.dest.join("copied.tar").is_file());
}

#[test]
fn add_copies_a_non_archive_as_a_file() {
    let f = fx();
    put(&f.ctx.join("fake.tar.gz"), "", 0o644);
    put(&f.ctx.join("text.tar"), "just text", 0o644);
    let add = |s: &str, d: &str| CopyAction {
        unpack_archives: true,
        ..cp(&[s], d)
    };
    copy(&f, add("fake.tar.gz", "/d/")).unwrap();
    copy(&f, add("text.tar", "/d/")).unwrap();
    assert!(f.dest.join("d/fake.tar.gz").is_file());
    assert_eq!(read(&f.dest.join("d/text.tar")), "just text");
}

#[test]
fn add_with_chown_owns_unpacked_entries() {
    let f = fx();
    fs::write(f.ctx.join("a.tar"), tar_bytes()).unwrap();
    let add = CopyAction {
        unpack_archives: true,
        owner: Some(Owner {
            user: "9".into(),
            group: None,
        }),
        ..cp(&["a.tar"], "/u/")
    };
    copy(&f, add).unwrap();
    let m = fs::metadata(f.dest.join("u/top/file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (9, 9));
}

#[test]
fn directory_onto_file_and_file_onto_directory_fail() {
    let f = fx();
    put(&f.ctx.join("d/sub/x"), "X", 0o644);
    put(&f.ctx.join("e/sub"), "file", 0o644);
    put(&f.dest.join("file"), "F", 0o644);
    let e = copy(&f, cp(&["d"], "/file")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotADirectory), "{e}");
    fs::create_dir_all(f.dest.join("t/sub")).unwrap();
    let e = copy(&f, cp(&["e"], "/t")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::IsADirectory), "{e}");
    // A file replaces a file.
    put(&f.ctx.join("n"), "new", 0o644);
    copy(&f, cp(&["n"], "/file")).unwrap();
    assert_eq!(read(&f.dest.join("file")), "new");
}

#[test]
fn xattrs_are_copied() {
    let f = fx();
    put(&f.ctx.join("x"), "X", 0o644);
    let p = f.ctx.join("x");
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    if rustix::fs::setxattr(
        c.as_c_str(),
        "user.kiln",
        b"yes",
        rustix::fs::XattrFlags::empty(),
    )
    .is_err()
    {
        return; // the test filesystem has no user xattrs
    }
    copy(&f, cp(&["x"], "/x")).unwrap();
    let d = std::ffi::CString::new(f.dest.join("x").as_os_str().as_encoded_bytes()).unwrap();
    let mut v = [0u8; 16];
    let n = rustix::fs::getxattr(d.as_c_str(), "user.kiln", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"yes");
}

#[test]
fn mkdir_mkfile_rm_symlink() {
    let f = fx();
    put(
        &f.dest.join("etc/passwd"),
        "app:x:1000:1000::/:/bin/sh\n",
        0o644,
    );
    let own = Some(Owner {
        user: "app".into(),
        group: None,
    });
    run(
        &f,
        vec![
            FileAction::Mkdir {
                path: "/a/b/c".into(),
                mode: 0o750,
                parents: true,
                owner: own.clone(),
            },
            FileAction::Mkfile {
                path: "/a/b/c/f".into(),
                mode: 0o600,
                data: b"data".to_vec(),
                owner: own.clone(),
            },
            FileAction::Symlink {
                target: "c/f".into(),
                path: "/a/b/l".into(),
            },
            FileAction::Mkdir {
                path: "/a/b/c".into(),
                mode: 0o700,
                parents: false,
                owner: None,
            },
        ],
    )
    .unwrap();
    let m = fs::metadata(f.dest.join("a/b/c")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 1000, 1000));
    assert_eq!(mode(&f.dest.join("a")), 0o750);
    let m = fs::metadata(f.dest.join("a/b/c/f")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 1000));
    assert_eq!(read(&f.dest.join("a/b/l")), "data");
    let e = run(
        &f,
        vec![FileAction::Mkdir {
            path: "/no/such".into(),
            mode: 0o755,
            parents: false,
            owner: None,
        }],
    )
    .unwrap_err();
    assert!(e.to_string().contains("mkdir /no/such"), "{e}");
    run(
        &f,
        vec![FileAction::Rm {
            path: "/a/b".into(),
            allow_not_found: false,
        }],
    )
    .unwrap();
    assert!(!f.dest.join("a/b").exists());
    run(
        &f,
        vec![FileAction::Rm {
            path: "/a/b".into(),
            allow_not_found: true,
        }],
    )
    .unwrap();
    let e = run(
        &f,
        vec![FileAction::Rm {
            path: "/a/b".into(),
            allow_not_found: false,
        }],
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotFound), "{e}");
}

#[test]
fn copy_from_unknown_input_is_an_error() {
    let f = fx();
    let e = copy(
        &f,
        CopyAction {
            input: 9,
            ..cp(&["a"], "/a")
        },
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnknownInput(9)), "{e}");
}

#[test]
#[ignore = "measurement: KILN_BENCH_CTX=dir cargo test -p kiln-solver bench_copy -- --ignored --nocapture"]
fn bench_copy() {
    let Ok(ctx) = std::env::var("KILN_BENCH_CTX") else {
        return;
    };
    let dest = tempfile::tempdir_in("/tmp").unwrap();
    let inputs = [
        CopySource::rootfs(dest.path()),
        CopySource::context(Path::new(&ctx), None),
    ];
    let env = FileOpEnv {
        dest_root: dest.path(),
        inputs: &inputs,
        epoch: None,
    };
    let t = std::time::Instant::now();
    apply(&env, &[FileAction::Copy(cp(&["."], "/ctx/"))]).unwrap();
    eprintln!("copied {ctx} in {:?}", t.elapsed());
}

#[test]
fn parents_with_a_directory_pattern_copy_its_tree_and_parent_modes() {
    let f = fx();
    put(&f.ctx.join("a/b/c/f"), "F", 0o644);
    put(&f.ctx.join("a/other"), "O", 0o644);
    fs::set_permissions(f.ctx.join("a"), fs::Permissions::from_mode(0o711)).unwrap();
    copy(
        &f,
        CopyAction {
            parents: true,
            ..cp(&["a/b"], "/p/")
        },
    )
    .unwrap();
    assert_eq!(read(&f.dest.join("p/a/b/c/f")), "F");
    assert!(!f.dest.join("p/a/other").exists());
    assert_eq!(
        mode(&f.dest.join("p/a")),
        0o711,
        "parents keep the source's mode"
    );
}

#[test]
fn mkdir_on_existing_is_ok_and_mkfile_on_a_directory_fails() {
    let f = fx();
    fs::create_dir(f.dest.join("d")).unwrap();
    run(
        &f,
        vec![FileAction::Mkdir {
            path: "/d".into(),
            mode: 0o700,
            parents: false,
            owner: None,
        }],
    )
    .unwrap();
    let e = run(
        &f,
        vec![FileAction::Mkfile {
            path: "/d".into(),
            mode: 0o644,
            data: vec![],
            owner: None,
        }],
    )
    .unwrap_err();
    assert_eq!(e.action, "mkfile");
    assert_eq!(e.path, "/d");
}

#[test]
fn add_makes_missing_archive_parents_0755_root_owned() {
    let f = fx();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o600);
    h.set_size(1);
    b.append_data(&mut h, "deep/er/file", &b"x"[..]).unwrap();
    fs::write(f.ctx.join("p.tar"), b.into_inner().unwrap()).unwrap();
    let add = CopyAction {
        unpack_archives: true,
        owner: Some(Owner {
            user: "3".into(),
            group: None,
        }),
        mode: Some("700".into()),
        ..cp(&["p.tar"], "/u/v/")
    };
    copy(&f, add).unwrap();
    let d = fs::metadata(f.dest.join("u/v/deep/er")).unwrap();
    assert_eq!((d.mode() & 0o7777, d.uid()), (0o755, 0));
    let v = fs::metadata(f.dest.join("u/v")).unwrap();
    assert_eq!(
        (v.mode() & 0o7777, v.uid()),
        (0o755, 3),
        "the unpack dir takes --chown"
    );
    let file = fs::metadata(f.dest.join("u/v/deep/er/file")).unwrap();
    assert_eq!((file.mode() & 0o7777, file.uid()), (0o600, 3));
}

#[test]
fn dockerignore_cannot_be_bypassed_through_a_context_symlink() {
    let f = fx();
    put(&f.ctx.join("dir/secret"), "S", 0o600);
    put(&f.ctx.join("dir/ok"), "ok", 0o644);
    symlink("dir", f.ctx.join("link")).unwrap();
    symlink("/dir/../dir", f.ctx.join("abs")).unwrap();
    let m = Matcher::from_patterns(["dir/secret"]).unwrap();
    let go = |src: &str, dest: &str| {
        run_with(&f, vec![FileAction::Copy(cp(&[src], dest))], Some(&m), None)
    };
    go("link", "/a").unwrap();
    assert!(f.dest.join("a/ok").exists());
    assert!(!f.dest.join("a/secret").exists());
    go("abs/", "/b").unwrap();
    assert!(!f.dest.join("b/secret").exists());
    for s in ["link/secret", "abs/secret", "link/../link/secret"] {
        let e = go(s, "/c").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NotFound), "{s}: {e}");
    }
    go("link/*", "/w/").unwrap();
    assert!(f.dest.join("w/ok").exists());
    assert!(!f.dest.join("w/secret").exists());
}

#[test]
fn stdin_streams_are_told_apart_as_docker_does() {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_old();
    h.set_path("Dockerfile").unwrap();
    h.set_size(5);
    h.set_cksum();
    tar.append(&h, &b"FROM "[..]).unwrap();
    let bytes = tar.into_inner().unwrap();
    // A v7 header (no "ustar" magic) is a tar by its checksum alone.
    assert_eq!(stream_kind(&bytes[..512]), StreamKind::Archive);
    let mut damaged = bytes[..512].to_vec();
    damaged[0] ^= 1;
    assert_eq!(stream_kind(&damaged), StreamKind::Other);
    assert_eq!(stream_kind(&[0x1f, 0x8b, 8]), StreamKind::Archive);
    assert_eq!(stream_kind(&[0x28, 0xb5, 0x2f, 0xfd]), StreamKind::Archive);
    let long = format!("FROM busybox\n{}", "RUN true\n".repeat(100));
    assert_eq!(stream_kind(long.as_bytes()), StreamKind::Other);
    assert_eq!(stream_kind(&[0; 512]), StreamKind::Other);
    assert_eq!(stream_kind(b""), StreamKind::Other);
}

#[test]
fn unpack_stream_keeps_every_entry_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        // Raw names: the tar crate refuses to write `..` through set_path.
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        tar.append(&h, data).unwrap();
    };
    let up = format!("../../../../../../..{}/by-name", outside.path().display());
    add(&up, tar::EntryType::Regular, None, b"x");
    let target = outside.path().to_str().unwrap().to_string();
    add("link", tar::EntryType::Symlink, Some(&target), b"");
    add("link/through", tar::EntryType::Regular, None, b"y");
    let bytes = tar.into_inner().unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&bytes).unwrap();
        e.finish().unwrap()
    };
    unpack_stream(dir.path(), std::io::Cursor::new(gz), "test").unwrap();
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    let inside = dir.path().join(outside.path().strip_prefix("/").unwrap());
    assert_eq!(read(&inside.join("by-name")), "x");
    assert_eq!(read(&inside.join("through")), "y");
}

/// A tar of `entries` (path, data; a path ending in `/` is a directory, `path -> target` a
/// symlink), every entry at mtime `mtime`.
fn tar_of(entries: &[(&str, &str)], mtime: u64) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        if let Some((name, target)) = path.split_once(" -> ") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            h.set_link_name(target).unwrap();
            h.set_path(name).unwrap();
            h.set_cksum();
            tar.append(&h, &b""[..]).unwrap();
        } else if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_path(path).unwrap();
            h.set_cksum();
            tar.append(&h, &b""[..]).unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_path(path).unwrap();
            h.set_cksum();
            tar.append(&h, data.as_bytes()).unwrap();
        }
    }
    tar.into_inner().unwrap()
}

/// Every path under `dir` with its kind and content (what a build would see of it).
fn tree_of(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                out.push(format!("{rel}/ {mode:o} {}", m.mtime()));
                walk(root, &p, out);
            } else {
                out.push(format!("{rel} {mode:o} {} {}", m.mtime(), read(&p)));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_sync_leaves_what_a_fresh_unpack_would() {
    let first = tar_of(
        &[
            ("a/", ""),
            ("a/same", "unchanged"),
            ("a/edited", "old text"),
            ("a/gone", "removed later"),
            ("old-dir/", ""),
            ("old-dir/f", "x"),
            ("becomes-dir", "a file first"),
            ("real/", ""),
            ("l -> real", ""),
        ],
        1000,
    );
    let second = tar_of(
        &[
            ("a/", ""),
            ("a/same", "unchanged"),
            // Same size and mtime: only the content tells.
            ("a/edited", "new text"),
            ("becomes-dir/", ""),
            ("becomes-dir/f", "y"),
            ("real/", ""),
            ("l -> real", ""),
            // Below a symlink: lands in real/, and must survive the sweep.
            ("l/through", "z"),
            ("new", "fresh"),
        ],
        1000,
    );
    let mirror = tempfile::tempdir().unwrap();
    let s1 = sync_stream(mirror.path(), std::io::Cursor::new(first), "first").unwrap();
    assert_eq!((s1.kept, s1.written, s1.removed), (0, 5, 0));
    let same_ino = fs::metadata(mirror.path().join("a/same")).unwrap().ino();
    let edited = fs::File::open(mirror.path().join("a/edited")).unwrap();
    let s2 = sync_stream(
        mirror.path(),
        std::io::Cursor::new(second.clone()),
        "second",
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    unpack_stream(fresh.path(), std::io::Cursor::new(second.clone()), "fresh").unwrap();
    assert_eq!(tree_of(mirror.path()), tree_of(fresh.path()));
    assert_eq!(s2.kept, 1, "{s2:?}");
    assert_eq!(
        s2.written, 4,
        "edited, becomes-dir/f, real/through, new: {s2:?}"
    );
    assert_eq!(s2.removed, 3, "a/gone, old-dir/f and old-dir: {s2:?}");
    assert_eq!(
        fs::metadata(mirror.path().join("a/same")).unwrap().ino(),
        same_ino,
        "an unchanged file keeps its inode (and so its stat stamp)"
    );
    // The old content was never written over: a reader holding it still reads it.
    let mut old = String::new();
    std::io::Read::read_to_string(&mut &edited, &mut old).unwrap();
    assert_eq!(old, "old text");
    // The same stream again changes nothing.
    let s3 = sync_stream(mirror.path(), std::io::Cursor::new(second), "third").unwrap();
    assert_eq!((s3.kept, s3.written, s3.removed), (5, 0, 0), "{s3:?}");
    assert_eq!(tree_of(mirror.path()), tree_of(fresh.path()));
}

#[test]
fn a_sync_rewrites_a_file_whose_metadata_changed() {
    let mirror = tempfile::tempdir().unwrap();
    let t1 = tar_of(&[("f", "same")], 1000);
    let t2 = tar_of(&[("f", "same")], 2000);
    sync_stream(mirror.path(), std::io::Cursor::new(t1), "t1").unwrap();
    let s = sync_stream(mirror.path(), std::io::Cursor::new(t2), "t2").unwrap();
    assert_eq!((s.kept, s.written), (0, 1));
    assert_eq!(fs::metadata(mirror.path().join("f")).unwrap().mtime(), 2000);
}

#[test]
fn a_sync_keeps_every_entry_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("victim"), "keep me").unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let t = tar_of(
        &[(&format!("link -> {target}"), ""), ("link/victim", "owned")],
        0,
    );
    sync_stream(dir.path(), std::io::Cursor::new(t.clone()), "t").unwrap();
    sync_stream(dir.path(), std::io::Cursor::new(t), "t").unwrap();
    assert_eq!(read(&outside.path().join("victim")), "keep me");
    let inside = dir.path().join(outside.path().strip_prefix("/").unwrap());
    assert_eq!(read(&inside.join("victim")), "owned");
}
