//! An image's config applied to a run: Entrypoint/Cmd composition, Env,
//! WorkingDir, User and StopSignal, exactly as docker combines them with
//! `docker run` flags. Also the seam where the store plugs in.

use std::path::PathBuf;

use oci_spec::image::Config;

use crate::error::{Error, Result};
use crate::spec::DEFAULT_PATH;

/// How the store lays out an image snapshot for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsLayout {
    /// Read-only layers, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The writable upper directory.
    pub upper: PathBuf,
    /// overlayfs' work directory.
    pub work: PathBuf,
}

/// Turns an image reference into a rootfs layout and the image's config.
/// The store implements it; until then `kiln run --rootfs DIR` stands in.
pub trait ImageResolver {
    /// Resolves `image` and prepares a fresh snapshot for container `id`.
    fn resolve(&self, image: &str, id: &str) -> Result<(RootfsLayout, Config)>;
}

/// What the user gave on the command line, on top of the image.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// `--entrypoint` (`Some(empty)` clears the image's entrypoint); the CLI's one string
    /// is a one-element list, the Engine API's `Entrypoint` a whole argv.
    pub entrypoint: Option<Vec<String>>,
    /// The arguments after the image name.
    pub cmd: Vec<String>,
    /// `-e` and `--env-file` entries in order: `K=V`, or `K` to copy from kiln's environment.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
}

/// The process a run composes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// argv.
    pub args: Vec<String>,
    /// `K=V` environment, image first, overrides replacing by key.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Unresolved user (`""` = root).
    pub user: String,
    /// The signal `kiln stop` sends (image StopSignal or SIGTERM).
    pub stop_signal: String,
}

/// Composes the process as docker does: `--entrypoint` replaces the image's
/// Entrypoint *and* drops its Cmd; arguments replace Cmd; argv is
/// Entrypoint followed by Cmd.
pub fn compose(cfg: Option<&Config>, o: &RunOverrides) -> Result<Composed> {
    let empty = Config::default();
    let cfg = cfg.unwrap_or(&empty);
    let (entrypoint, image_cmd): (Vec<String>, Vec<String>) = match &o.entrypoint {
        Some(e) => (e.clone(), Vec::new()),
        None => (
            cfg.entrypoint().clone().unwrap_or_default(),
            cfg.cmd().clone().unwrap_or_default(),
        ),
    };
    let cmd = if o.cmd.is_empty() {
        image_cmd
    } else {
        o.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::Invalid {
            what: "command",
            detail: "no command specified (the image has no Entrypoint or Cmd)".into(),
        });
    }
    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    for e in &o.env {
        // `-e K` (take K from the client's environment) is resolved by the client: the
        // engine never hands its own environment (an API service's) to a container.
        if !e.contains('=') {
            continue;
        }
        set_env(&mut env, e.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let cwd = o
        .workdir
        .clone()
        .or_else(|| cfg.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::Invalid {
            what: "working directory",
            detail: format!("{cwd} is not an absolute path"),
        });
    }
    Ok(Composed {
        args,
        env,
        cwd,
        user: o
            .user
            .clone()
            .or_else(|| cfg.user().clone())
            .unwrap_or_default(),
        stop_signal: cfg
            .stop_signal()
            .clone()
            .unwrap_or_else(|| "SIGTERM".into()),
    })
}

/// Sets `K=V` in `env`, replacing an existing `K`.
pub fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    if let Some(slot) = env
        .iter_mut()
        .find(|e| e.split('=').next() == Some(key.as_str()))
    {
        *slot = kv;
    } else {
        env.push(kv);
    }
}

/// Parses an `--env-file`: `K=V` lines, `#` comments and blank lines skipped.
pub fn parse_env_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> Config {
        let mut c = Config::default();
        c.set_entrypoint(ep.map(|v| v.iter().map(|s| s.to_string()).collect()));
        c.set_cmd(cmd.map(|v| v.iter().map(|s| s.to_string()).collect()));
        c.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        c.set_working_dir(Some("/srv".into()));
        c.set_user(Some("nobody".into()));
        c
    }

    fn over(ep: Option<&str>, cmd: &[&str]) -> RunOverrides {
        RunOverrides {
            entrypoint: ep.map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.to_string()]
                }
            }),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_compose_like_docker() {
        let c = cfg(Some(&["/ep", "-x"]), Some(&["def"]));
        assert_eq!(
            compose(Some(&c), &over(None, &[])).unwrap().args,
            ["/ep", "-x", "def"]
        );
        assert_eq!(
            compose(Some(&c), &over(None, &["a"])).unwrap().args,
            ["/ep", "-x", "a"]
        );
        // --entrypoint drops the image's Cmd
        assert_eq!(
            compose(Some(&c), &over(Some("/bin/echo"), &[]))
                .unwrap()
                .args,
            ["/bin/echo"]
        );
        assert_eq!(
            compose(Some(&c), &over(Some("/bin/echo"), &["x", "y"]))
                .unwrap()
                .args,
            ["/bin/echo", "x", "y"]
        );
        // --entrypoint "" clears it: the arguments are the whole command
        assert_eq!(
            compose(Some(&c), &over(Some(""), &["sh"])).unwrap().args,
            ["sh"]
        );
        assert!(compose(Some(&c), &over(Some(""), &[])).is_err());
        let c = cfg(None, Some(&["sh", "-c", "x"]));
        assert_eq!(
            compose(Some(&c), &over(None, &[])).unwrap().args,
            ["sh", "-c", "x"]
        );
        assert!(compose(None, &over(None, &[])).is_err());
    }

    #[test]
    fn env_workdir_and_user_come_from_the_image_unless_overridden() {
        let c = cfg(None, Some(&["sh"]));
        let mut o = over(None, &[]);
        o.env = vec!["A=2".into(), "B=3".into()];
        let p = compose(Some(&c), &o).unwrap();
        assert_eq!(p.env, ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/srv", "nobody"));
        o.workdir = Some("/tmp".into());
        o.user = Some("0".into());
        let p = compose(Some(&c), &o).unwrap();
        assert_eq!(
            (p.cwd.as_str(), p.user.as_str(), p.stop_signal.as_str()),
            ("/tmp", "0", "SIGTERM")
        );
        let p = compose(None, &over(None, &["true"])).unwrap();
        assert_eq!(p.env, [format!("PATH={DEFAULT_PATH}")]);
    }
}
