//! `kiln cp`: files between a container and the host, both ways, as `docker cp` copies them
//! (`CONTAINER:PATH` names a path in a container; `-` is a tar on standard input or output).
//! The container side is the engine's archive and extraction (the Engine API's too); the
//! host side decides names as the docker CLI does and unpacks with the same resolver.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use kiln_engine::containers::{ArchiveOptions, PathStat};
use kiln_engine::Engine;
use kiln_solver::fileop::RootedDir;

use crate::Globals;

/// Flags of `kiln cp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Archive mode: keep owners (accepted for docker's sake: owners are always those of the
    /// archive).
    #[arg(short, long)]
    archive: bool,
    /// Follow a symlink given as the source.
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// The source: a host path, `CONTAINER:PATH`, or `-` (a tar on standard input).
    src: String,
    /// The destination: a host path, `CONTAINER:PATH`, or `-` (a tar on standard output).
    dst: String,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Host(String),
    Container(String, String),
}

/// docker's split: an absolute path, a path starting with `.`, or one without `:` is the
/// host's; otherwise `CONTAINER:PATH`.
fn side(arg: &str) -> Side {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Side::Host(arg.into());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c.into(), p.into()),
        _ => Side::Host(arg.into()),
    }
}

/// The last component of a path (`.` for `/.` and the root), as docker names a copy.
fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or(".")
        .to_string()
}

/// The directory a path is in (`/` at the top), for a container path.
fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((p, _)) => p.into(),
        None if path.starts_with('/') => "/".into(),
        None => ".".into(),
    }
}

/// Copies as `docker cp` does.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    match (side(&args.src), side(&args.dst)) {
        (Side::Container(c, src), Side::Host(dst)) => {
            from_container(&engine, &args, &c, &src, &dst)
        }
        (Side::Host(src), Side::Container(c, dst)) => to_container(&engine, &args, &src, &c, &dst),
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Side::Host(_), Side::Host(_)) => bail!("must specify at least one container source"),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// `kiln cp CONTAINER:SRC DST`.
fn from_container(
    engine: &Engine,
    args: &Args,
    c: &str,
    src: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let mut options = ArchiveOptions {
        follow_link: args.follow_link,
        rename: None,
    };
    if dst == "-" {
        // Standard output as a file of its own: the archive may be written on another thread.
        let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
        let out = std::io::BufWriter::with_capacity(64 * 1024, stdout);
        let mut out = engine.container_archive(c, src, &options, |_| Ok(out))?;
        out.flush()?;
        return Ok(());
    }
    let mut stat = engine.container_path_stat(c, src)?;
    if args.follow_link && stat.is_symlink() {
        stat = engine.container_path_stat(c, &stat.link_target)?;
    }
    let dst_path = Path::new(dst);
    let target_dir = match std::fs::metadata(dst_path) {
        Ok(m) if m.is_dir() => dst_path.to_path_buf(),
        Ok(_) if stat.is_dir() => {
            bail!("cannot copy a directory to a file: {dst} is not a directory")
        }
        Ok(_) => {
            options.rename = Some(base_name(dst));
            host_parent(dst_path)
        }
        Err(_) if dst.ends_with('/') && !stat.is_dir() => {
            bail!("destination directory {dst} does not exist")
        }
        Err(_) => {
            options.rename = Some(base_name(dst));
            host_parent(dst_path)
        }
    };
    let dir = open_host_dir(&target_dir)?;
    let (reader, writer) = pipe()?;
    std::thread::scope(|s| {
        let archive = s.spawn(|| {
            engine
                .container_archive(c, src, &options, |_| Ok(writer))
                .map(drop)
        });
        let unpacked =
            RootedDir::new(dir).unpack_into(b"/", reader, "the container's archive", false);
        let archived = archive
            .join()
            .map_err(|_| anyhow::anyhow!("the copy's thread panicked"))?;
        let unpacked = unpacked.with_context(|| format!("copying into {}", target_dir.display()));
        first_cause(archived.map_err(anyhow::Error::from), unpacked)
    })
}

/// The outcome of a copy whose `writer` fed a pipe that `reader` read: when both failed,
/// the writer's error is only the cause when it is not the broken pipe the reader's failure
/// made.
fn first_cause(writer: anyhow::Result<()>, reader: anyhow::Result<()>) -> anyhow::Result<()> {
    match (writer, reader) {
        (Err(w), Err(r)) if format!("{w:#}").to_lowercase().contains("broken pipe") => Err(r),
        (Err(w), _) => Err(w),
        (Ok(()), r) => r,
    }
}

/// A pipe between the thread that writes an archive and the one that reads it.
fn pipe() -> anyhow::Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    Ok((File::from(r), File::from(w)))
}

/// The directory a host path is in.
fn host_parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn open_host_dir(path: &Path) -> anyhow::Result<OwnedFd> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    if !file.metadata()?.is_dir() {
        bail!("{} is not a directory", path.display());
    }
    Ok(OwnedFd::from(file))
}

/// `kiln cp SRC CONTAINER:DST`.
fn to_container(engine: &Engine, args: &Args, src: &str, c: &str, dst: &str) -> anyhow::Result<()> {
    if src == "-" {
        engine.extract_to_container(c, dst, std::io::stdin(), true)?;
        return Ok(());
    }
    let src_path = if args.follow_link {
        std::fs::canonicalize(src).with_context(|| format!("could not find {src}"))?
    } else {
        PathBuf::from(src)
    };
    let src_meta = std::fs::symlink_metadata(&src_path)
        .with_context(|| format!("could not find the file {src}"))?;
    let src_is_dir = src_meta.is_dir();
    let dst_stat: Option<PathStat> = match engine.container_path_stat(c, dst) {
        Ok(s) if s.is_symlink() => Some(engine.container_path_stat(c, &s.link_target)?),
        Ok(s) => Some(s),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let (dir, name) = match dst_stat {
        Some(s) if s.is_dir() => (dst.to_string(), base_name(src)),
        Some(_) if src_is_dir => {
            bail!("cannot copy a directory to a file: {dst} is not a directory")
        }
        Some(_) => (parent_of(dst), base_name(dst)),
        None if dst.ends_with('/') && !src_is_dir => {
            bail!("destination directory {dst} does not exist")
        }
        None => (parent_of(dst), base_name(dst)),
    };
    // The entry itself inside its parent, or a directory's contents (`SRC/.`, `/`).
    let (parent, entry): (PathBuf, Option<Vec<u8>>) = match src_path.file_name() {
        Some(n) if !src.ends_with("/.") => {
            (host_parent(&src_path), Some(n.as_encoded_bytes().to_vec()))
        }
        _ => (src_path.clone(), None),
    };
    let parent_fd = open_host_dir(&parent)?;
    let (reader, writer) = pipe()?;
    std::thread::scope(|s| {
        let tar = s.spawn(move || {
            kiln_cache::layer::write_entry_tar(
                parent_fd.as_fd(),
                entry.as_deref(),
                name.as_bytes(),
                writer,
            )
            .map(drop)
        });
        let extracted = engine.extract_to_container(c, &dir, reader, true);
        let written = tar
            .join()
            .map_err(|_| anyhow::anyhow!("the copy's thread panicked"))?
            .with_context(|| format!("archiving {src}"));
        first_cause(written, extracted.map_err(anyhow::Error::from))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_docker_splits_them() {
        assert_eq!(side("c1:/etc"), Side::Container("c1".into(), "/etc".into()));
        assert_eq!(side("/abs:x"), Side::Host("/abs:x".into()));
        assert_eq!(side("./a:b"), Side::Host("./a:b".into()));
        assert_eq!(side("file"), Side::Host("file".into()));
        assert_eq!(side("-"), Side::Host("-".into()));
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/etc/."), ".");
        assert_eq!(base_name("/"), ".");
        assert_eq!(parent_of("/etc/passwd"), "/etc");
        assert_eq!(parent_of("/etc"), "/");
        assert_eq!(parent_of("etc"), ".");
    }
}
