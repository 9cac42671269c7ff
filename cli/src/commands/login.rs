//! `kiln login`: check credentials against a registry and store them as `docker login` does.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{bail, Context};
use kiln_engine::login::{registry_host, LoginCheck};
use kiln_registry::auth::{Credentials, DockerConfig};

/// Flags of `kiln login`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Username.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible in the process list: prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Require HTTPS and verify certificates (loopback registries always use plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: bool,
    /// The registry (host[:port]); Docker Hub when omitted.
    pub server: Option<String>,
}

/// Verifies the credentials, then writes them to docker's config file (0600, atomic).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = registry_host(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) if !u.is_empty() => u,
        _ if args.password_stdin => bail!("must provide --username with --password-stdin"),
        _ if interactive => prompt::line("Username: ")?,
        _ => bail!("cannot perform an interactive login from a non TTY device"),
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        // docker strips the trailing newline (and carriage return) only.
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if interactive {
        prompt::secret("Password: ")?
    } else {
        bail!("no password: give it with --password-stdin or -p");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }

    // The check needs no store: an engine on the default root opens nothing.
    let engine = kiln_engine::Engine::new(kiln_engine::default_root());
    engine.check_login(&LoginCheck {
        server: Some(registry.clone()),
        credentials: kiln_registry::auth::RegistryAuth::basic(&username, &password),
        tls_verify: args.tls_verify,
    })?;

    let path = DockerConfig::default_path()?;
    let mut file = DockerConfig::load(&path)?;
    file.store(&registry, &Credentials { username, password })
        .with_context(|| format!("storing credentials in {}", path.display()))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Prompts on the terminal, as `docker login` does.
mod prompt {
    use std::io::{BufRead, Write};

    /// Reads one line after printing `label`.
    pub fn line(label: &str) -> anyhow::Result<String> {
        eprint!("{label}");
        std::io::stderr().flush()?;
        let mut text = String::new();
        std::io::stdin().lock().read_line(&mut text)?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }

    /// Reads one line with echo turned off (restored even when reading fails).
    pub fn secret(label: &str) -> anyhow::Result<String> {
        // SAFETY: termios is a plain C struct for which all-zero bytes are a valid value.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is open (stdin is a terminal, checked by the caller) and `saved` is a
        // valid, writable termios.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above; `quiet` is a valid termios derived from the current settings.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        let result = line(label);
        // SAFETY: restores the settings read above on the same fd.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        result
    }
}
