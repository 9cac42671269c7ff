//! Where `kiln build` takes its context from, as `docker build` decides:
//! a directory; `-` for a tar archive on standard input (plain or
//! compressed) or, when standard input holds no archive, a Dockerfile and
//! an empty context; or a git repository URL with an optional
//! `#ref:subdir` fragment.
//!
//! Contexts that are not a directory of the user's are made in a scratch
//! directory of the store (on its file system, under `--root`), removed when
//! the build ends.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result, ResultExt};
use kiln_cache::Store;
use kiln_solver::fileop::{self, StreamKind};

/// A build context ready to read, and the Dockerfile to build.
pub struct Prepared {
    /// The context directory.
    pub dir: PathBuf,
    /// The Dockerfile's path, for `.dockerignore` lookup
    /// (`<Dockerfile>.dockerignore` beside it); none when it came from
    /// standard input, which leaves the context's own `.dockerignore`.
    pub dockerfile_path: Option<PathBuf>,
    /// The Dockerfile's name in messages.
    pub dockerfile_name: String,
    /// The Dockerfile's bytes.
    pub dockerfile: Vec<u8>,
    /// Where the context's stat cache is kept between builds (none for a scratch copy made
    /// for this build only: no stat cache is worth keeping for it).
    pub stat_cache: Option<PathBuf>,
    /// What keeps the context directory for the build: a scratch directory removed when
    /// dropped, or a leased mirror released when dropped.
    _hold: Option<Hold>,
}

/// What a [`Prepared`] context directory made for the build is held by.
// Never read: each is held for what its drop does.
#[allow(dead_code)]
enum Hold {
    Scratch(Scratch),
    Mirror(kiln_cache::context_mirror::MirrorLease),
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A git context: the remote to clone and docker's `#ref:subdir` fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitContext {
    /// The URL git is given (without the fragment).
    pub remote: String,
    /// The branch, tag, commit or ref to check out (none: the remote's HEAD).
    pub reference: Option<String>,
    /// The directory inside the repository to use as the context ("" for all).
    pub subdir: String,
}

/// Whether `arg` names a git repository as the docker CLI decides
/// (`urlutil.IsGitURL`): an `http(s)://` URL whose path ends in `.git`
/// (before an optional fragment), or a `git://`, `github.com/` or `git@`
/// prefix; `ssh://` too, which BuildKit's git source accepts.
pub fn parse_git_context(arg: &str) -> Option<GitContext> {
    let (url, fragment) = match arg.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (arg, None),
    };
    let http = arg.starts_with("http://") || arg.starts_with("https://");
    let is_git = (http && url.ends_with(".git"))
        || ["git://", "github.com/", "git@", "ssh://"]
            .iter()
            .any(|p| arg.starts_with(p));
    if !is_git {
        return None;
    }
    let remote = match url.strip_prefix("github.com/") {
        Some(rest) => format!("https://github.com/{rest}"),
        None => url.to_string(),
    };
    let (reference, subdir) = match fragment.filter(|f| !f.is_empty()) {
        None => (None, String::new()),
        Some(f) => {
            let (r, s) = f.split_once(':').unwrap_or((f, ""));
            (
                Some(r.to_string()).filter(|r| !r.is_empty()),
                clean_subdir(s),
            )
        }
    };
    Some(GitContext {
        remote,
        reference,
        subdir,
    })
}

/// BuildKit's `path.Join("/", subdir)` without the leading `/`: `..`
/// cannot climb above the repository.
fn clean_subdir(s: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Where a build's context comes from.
pub enum BuildContext {
    /// A directory of the caller's, read in place.
    Directory(PathBuf),
    /// A tar archive, plain or compressed (gzip, bzip2, xz, zstd), unpacked into a scratch
    /// directory; a stream that holds no archive is a lone Dockerfile and the context is
    /// empty (as `docker build - < Dockerfile`). The CLI passes its standard input, the API
    /// the request body; `from` names it in errors ("standard input", "the request body").
    Archive {
        /// The bytes.
        stream: Box<dyn Read + Send>,
        /// What they are, for messages.
        from: &'static str,
    },
    /// A git repository URL with docker's optional `#ref:subdir` fragment, cloned into a
    /// scratch directory.
    Git(String),
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildContext::Directory(d) => f.debug_tuple("Directory").field(d).finish(),
            BuildContext::Archive { from, .. } => write!(f, "Archive({from})"),
            BuildContext::Git(url) => f.debug_tuple("Git").field(url).finish(),
        }
    }
}

impl BuildContext {
    /// The context a path argument names, as `docker build PATH|URL` tells them apart: a
    /// directory, else a git URL (`-`, an archive on standard input, is the caller's to
    /// open).
    pub fn locate(arg: &str) -> Result<BuildContext> {
        if Path::new(arg).is_dir() {
            return Ok(BuildContext::Directory(PathBuf::from(arg)));
        }
        if parse_git_context(arg).is_some() {
            return Ok(BuildContext::Git(arg.to_string()));
        }
        Err(Error::invalid(format!(
            "unable to prepare context: path {arg:?} not found"
        )))
    }
}

/// Which Dockerfile a build reads.
#[derive(Debug, Clone)]
pub enum DockerfileSource {
    /// A path inside the context (docker's default `Dockerfile`; the API's `dockerfile=`),
    /// which may not lead outside it.
    InContext(PathBuf),
    /// A file anywhere, as given (the CLI's `-f PATH` with a directory context).
    Path(PathBuf),
    /// The Dockerfile itself (`-f -`): no `<Dockerfile>.dockerignore` applies.
    Bytes {
        /// Its name in messages (`-`).
        name: String,
        /// Its content.
        bytes: Vec<u8>,
    },
}

/// Makes the context directory and reads the Dockerfile.
pub fn prepare(
    store: &Store,
    context: BuildContext,
    dockerfile: DockerfileSource,
    mirror_key: &str,
) -> Result<Prepared> {
    match context {
        BuildContext::Directory(dir) => {
            let (path, name, bytes) = match dockerfile {
                DockerfileSource::Bytes { name, bytes } => (None, name, bytes),
                DockerfileSource::Path(path) => {
                    let name = path.display().to_string();
                    let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
                    (Some(path), name, bytes)
                }
                DockerfileSource::InContext(rel) => {
                    let (path, bytes) = read_inside(&dir, &rel, &dir.display().to_string())?;
                    (Some(path), rel.display().to_string(), bytes)
                }
            };
            let stat_cache = Some(kiln_solver::statcache::cache_file_for(
                &store.root().join("statcache"),
                &dir,
            ));
            Ok(Prepared {
                dir,
                dockerfile_path: path,
                dockerfile_name: name,
                dockerfile: bytes,
                stat_cache,
                _hold: None,
            })
        }
        BuildContext::Archive { stream, from } => {
            from_archive(store, stream, from, dockerfile, mirror_key)
        }
        BuildContext::Git(url) => {
            let Some(git) = parse_git_context(&url) else {
                return Err(Error::invalid(format!(
                    "unable to prepare context: {url:?} is not a git repository URL"
                )));
            };
            let scratch = Scratch(store.scratch()?);
            let dir = clone(&git, &scratch.0)?;
            inside(Hold::Scratch(scratch), dir, dockerfile, &url, None)
        }
    }
}

/// An archive (perhaps compressed), or a Dockerfile alone. The archive brings the store's
/// mirror for `mirror_key` up to date (so files unchanged since the last build of that key
/// are not written again: `kiln_cache::context_mirror`), or, when another build holds that
/// mirror, is unpacked into a scratch directory.
fn from_archive(
    store: &Store,
    mut stream: Box<dyn Read + Send>,
    from: &'static str,
    dockerfile: DockerfileSource,
    mirror_key: &str,
) -> Result<Prepared> {
    // docker peeks one tar header block to tell an archive from a Dockerfile.
    let mut head = Vec::with_capacity(512);
    (&mut stream)
        .take(512)
        .read_to_end(&mut head)
        .with_context(|| format!("reading the build context from {from}"))?;
    let what = format!("the context in {from}");
    let unpack_error = |e: fileop::FileOpError| {
        Error::invalid(format!("unpacking the build context from {from}: {e}"))
    };
    match fileop::stream_kind(&head) {
        StreamKind::Archive => {
            let input = std::io::Cursor::new(head).chain(stream);
            if let Some(lease) = kiln_cache::context_mirror::lease(store.root(), mirror_key)? {
                let dir = lease.tree().to_path_buf();
                fileop::sync_stream(&dir, input, &what).map_err(unpack_error)?;
                let stat_cache = Some(lease.stat_cache_file());
                return inside(Hold::Mirror(lease), dir, dockerfile, "-", stat_cache);
            }
            let scratch = Scratch(store.scratch()?);
            let dir = scratch.0.join("context");
            std::fs::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
            fileop::unpack_stream(&dir, input, &what).map_err(unpack_error)?;
            inside(Hold::Scratch(scratch), dir, dockerfile, "-", None)
        }
        StreamKind::Other => {
            // A Dockerfile alone: docker writes it into an otherwise empty context.
            let scratch = Scratch(store.scratch()?);
            let dir = scratch.0.join("context");
            std::fs::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
            let mut bytes = head;
            stream
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading the Dockerfile from {from}"))?;
            std::fs::write(dir.join("Dockerfile"), &bytes)?;
            Ok(Prepared {
                dir,
                dockerfile_path: None,
                dockerfile_name: "Dockerfile".into(),
                dockerfile: bytes,
                stat_cache: None,
                _hold: Some(Hold::Scratch(scratch)),
            })
        }
    }
}

/// What makes two archive builds "the same project" for the context mirrors: the tags, the
/// Dockerfile's name and the target (a build without them shares one mirror with the others
/// alike, which stays correct: a sync makes the mirror what the stream says).
pub fn mirror_key(tags: &[String], dockerfile: &DockerfileSource, target: Option<&str>) -> String {
    let file = match dockerfile {
        DockerfileSource::InContext(p) | DockerfileSource::Path(p) => p.display().to_string(),
        DockerfileSource::Bytes { name, .. } => name.clone(),
    };
    // The docker CLI adds a Dockerfile from outside the context under a new random name
    // each time (`.dockerfile.` and 20 hex digits): it names no project.
    let random = file
        .strip_prefix(".dockerfile.")
        .is_some_and(|r| r.len() == 20 && r.bytes().all(|b| b.is_ascii_hexdigit()));
    let file = if random { ".dockerfile.*" } else { &file };
    format!("{}\0{file}\0{}", tags.join(","), target.unwrap_or(""))
}

/// A context made in `scratch` at `dir`; the Dockerfile is a file inside it, as docker
/// reads it for remote and archive contexts (a path given as outside is taken as inside).
fn inside(
    hold: Hold,
    dir: PathBuf,
    dockerfile: DockerfileSource,
    what: &str,
    stat_cache: Option<PathBuf>,
) -> Result<Prepared> {
    let rel = match dockerfile {
        DockerfileSource::Bytes { name, bytes } => {
            return Ok(Prepared {
                dir,
                dockerfile_path: None,
                dockerfile_name: name,
                dockerfile: bytes,
                stat_cache,
                _hold: Some(hold),
            });
        }
        DockerfileSource::InContext(rel) | DockerfileSource::Path(rel) => rel,
    };
    let (path, bytes) = read_inside(&dir, &rel, what)?;
    Ok(Prepared {
        dir,
        dockerfile_path: Some(path),
        dockerfile_name: rel.display().to_string(),
        dockerfile: bytes,
        stat_cache,
        _hold: Some(hold),
    })
}

/// Reads the Dockerfile `rel` inside the context `dir` (named `what` in messages).
fn read_inside(dir: &Path, rel: &Path, what: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = resolve_inside(dir, rel)
        .with_context(|| format!("the Dockerfile {} in the context {what}", rel.display()))?;
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading the Dockerfile {} from {what}", rel.display()))?;
    Ok((path, bytes))
}

/// `rel` under `root`, refusing a path (or a symlink on the way) that
/// leads outside it: the archive or repository is not trusted.
fn resolve_inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let root = std::fs::canonicalize(root)?;
    let mut joined = root.clone();
    for c in rel.components() {
        match c {
            Component::Normal(p) => joined.push(p),
            Component::ParentDir => {
                joined.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let real =
        std::fs::canonicalize(&joined).with_context(|| format!("{} not found", rel.display()))?;
    if !real.starts_with(&root) {
        return Err(Error::invalid(format!(
            "{} leads outside the context",
            rel.display()
        )));
    }
    Ok(real)
}

/// Clones `git` into `scratch/repo` with the git command line (as BuildKit
/// does; no Rust git crate speaks every transport and credential helper
/// users rely on) and returns the context directory inside it.
fn clone(git: &GitContext, scratch: &Path) -> Result<PathBuf> {
    let repo = scratch.join("repo");
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("git")
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            // Submodule URLs come from the repository, not the user: no
            // file:// (or other "user"-only transport) may reach the host's
            // own repositories through them.
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .stdin(Stdio::null())
            .output()
            .context("running git (is it installed?)")?;
        if !out.status.success() {
            return Err(Error::invalid(format!(
                "git {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    };
    let repo_s = repo
        .to_str()
        .ok_or_else(|| Error::Internal("non UTF-8 store path".into()))?;
    let what = || format!("unable to prepare context: cloning {}", git.remote);
    run(&["init", "-q", repo_s]).with_context(what)?;
    run(&["-C", repo_s, "remote", "add", "origin", &git.remote]).with_context(what)?;
    let wanted = git.reference.as_deref().unwrap_or("HEAD");
    let shallow = run(&[
        "-C",
        repo_s,
        "fetch",
        "-q",
        "--depth",
        "1",
        "--no-tags",
        "origin",
        wanted,
    ]);
    if let Err(e) = shallow {
        // A commit id a server will not hand out by itself: fetch
        // everything, then check it out.
        let is_commit = wanted.len() >= 7
            && wanted.len() <= 64
            && wanted.chars().all(|c| c.is_ascii_hexdigit());
        if !is_commit {
            return Err(e).with_context(what);
        }
        run(&["-C", repo_s, "fetch", "-q", "origin"]).with_context(what)?;
        run(&["-C", repo_s, "checkout", "-q", wanted]).with_context(what)?;
    } else {
        run(&["-C", repo_s, "checkout", "-q", "FETCH_HEAD"]).with_context(what)?;
    }
    run(&[
        "-C",
        repo_s,
        "submodule",
        "update",
        "-q",
        "--init",
        "--recursive",
        "--depth",
        "1",
    ])
    .with_context(what)?;
    // BuildKit leaves .git out of a git context (no --keep-git-dir).
    std::fs::remove_dir_all(repo.join(".git"))?;
    if git.subdir.is_empty() {
        return Ok(repo);
    }
    let dir = resolve_inside(&repo, Path::new(&git.subdir))
        .with_context(|| format!("unable to prepare context: subdirectory {}", git.subdir))?;
    if !dir.is_dir() {
        return Err(Error::invalid(format!(
            "unable to prepare context: {} is not a directory in {}",
            git.subdir, git.remote
        )));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_clis_random_dockerfile_name_names_no_project() {
        let key = |name: &str, tags: &[&str]| {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            mirror_key(&tags, &DockerfileSource::InContext(name.into()), None)
        };
        assert_eq!(
            key(".dockerfile.0123456789abcdef0123", &["app:1"]),
            key(".dockerfile.fedcba9876543210fedc", &["app:1"])
        );
        assert_ne!(key("Dockerfile", &["app:1"]), key("Dockerfile", &["app:2"]));
        assert_ne!(
            key("Dockerfile", &["app:1"]),
            key("other.Dockerfile", &["app:1"])
        );
        assert_ne!(key(".dockerfile.short", &[]), key(".dockerfile.other", &[]));
    }

    #[test]
    fn git_urls_as_docker_tells_them() {
        let g = parse_git_context("https://example.com/r.git#v1:sub/dir").unwrap();
        assert_eq!(g.remote, "https://example.com/r.git");
        assert_eq!(g.reference.as_deref(), Some("v1"));
        assert_eq!(g.subdir, "sub/dir");
        let g = parse_git_context("git@host:org/r.git").unwrap();
        assert_eq!((g.reference, g.subdir.as_str()), (None, ""));
        let g = parse_git_context("github.com/org/r#:../../x/./y").unwrap();
        assert_eq!(g.remote, "https://github.com/org/r");
        assert_eq!((g.reference, g.subdir.as_str()), (None, "x/y"));
        assert!(parse_git_context("git://127.0.0.1:9/r#main").is_some());
        // A plain web URL is not a git repository; neither is a path.
        assert!(parse_git_context("https://example.com/ctx.tar").is_none());
        assert!(parse_git_context("./some.git").is_none());
    }
}
