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

use anyhow::{anyhow, bail, Context, Result};
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
    /// Whether the context is a scratch copy made for this build only (no
    /// stat cache is worth keeping for it).
    pub temporary: bool,
    /// Removes the scratch directory when dropped.
    _scratch: Option<Scratch>,
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

/// Resolves the context argument and `-f` into a context directory and a Dockerfile.
pub fn prepare(store: &Store, context: &str, file: Option<&Path>) -> Result<Prepared> {
    let stdin_dockerfile = file.is_some_and(|f| f.as_os_str() == "-");
    if context == "-" {
        if stdin_dockerfile {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        return from_stdin(store, file);
    }
    if Path::new(context).is_dir() {
        let dockerfile_path = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| Path::new(context).join("Dockerfile"));
        let (name, bytes) = super::parse::read_dockerfile(&dockerfile_path)?;
        return Ok(Prepared {
            dir: PathBuf::from(context),
            dockerfile_path: (!stdin_dockerfile).then_some(dockerfile_path),
            dockerfile_name: name,
            dockerfile: bytes,
            temporary: false,
            _scratch: None,
        });
    }
    if let Some(git) = parse_git_context(context) {
        let scratch = Scratch(store.scratch()?);
        let dir = clone(&git, &scratch.0)?;
        return inside(scratch, dir, file, context);
    }
    bail!("unable to prepare context: path {context:?} not found")
}

/// `-`: a tar archive (perhaps compressed), streamed into a scratch
/// directory, or a Dockerfile alone.
fn from_stdin(store: &Store, file: Option<&Path>) -> Result<Prepared> {
    let mut stdin = std::io::stdin();
    // docker peeks one tar header block to tell an archive from a Dockerfile.
    let mut head = Vec::with_capacity(512);
    (&mut stdin)
        .take(512)
        .read_to_end(&mut head)
        .context("reading the build context from standard input")?;
    let scratch = Scratch(store.scratch()?);
    let dir = scratch.0.join("context");
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    match fileop::stream_kind(&head) {
        StreamKind::Archive => {
            let input = std::io::Cursor::new(head).chain(stdin);
            fileop::unpack_stream(&dir, input, "the context on standard input")
                .map_err(|e| anyhow!("unpacking the build context from standard input: {e}"))?;
            inside(scratch, dir, file, "-")
        }
        StreamKind::Other => {
            // A Dockerfile alone: docker writes it into an otherwise empty context.
            let mut bytes = head;
            stdin
                .read_to_end(&mut bytes)
                .context("reading the Dockerfile from standard input")?;
            std::fs::write(dir.join("Dockerfile"), &bytes)?;
            Ok(Prepared {
                dir,
                dockerfile_path: None,
                dockerfile_name: "Dockerfile".into(),
                dockerfile: bytes,
                temporary: true,
                _scratch: Some(scratch),
            })
        }
    }
}

/// A context made in `scratch` at `dir`; `-f` names a file inside it, as
/// docker reads it for remote and archive contexts.
fn inside(scratch: Scratch, dir: PathBuf, file: Option<&Path>, what: &str) -> Result<Prepared> {
    let rel = match file {
        Some(f) if f.as_os_str() == "-" => {
            let (name, bytes) = super::parse::read_dockerfile(f)?;
            return Ok(Prepared {
                dir,
                dockerfile_path: None,
                dockerfile_name: name,
                dockerfile: bytes,
                temporary: true,
                _scratch: Some(scratch),
            });
        }
        Some(f) => f.to_path_buf(),
        None => PathBuf::from("Dockerfile"),
    };
    let path = resolve_inside(&dir, &rel)
        .with_context(|| format!("the Dockerfile {} in the context {what}", rel.display()))?;
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading the Dockerfile {} from {what}", rel.display()))?;
    Ok(Prepared {
        dir,
        dockerfile_path: Some(path),
        dockerfile_name: rel.display().to_string(),
        dockerfile: bytes,
        temporary: true,
        _scratch: Some(scratch),
    })
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
        bail!("{} leads outside the context", rel.display());
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
            bail!(
                "git {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    let repo_s = repo
        .to_str()
        .ok_or_else(|| anyhow!("non UTF-8 store path"))?;
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
        bail!(
            "unable to prepare context: {} is not a directory in {}",
            git.subdir,
            git.remote
        );
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

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
