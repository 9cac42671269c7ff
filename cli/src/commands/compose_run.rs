//! `kiln compose up/down/ps/logs/build/pull/exec/run/start/stop/restart/kill/rm/images/top/
//! port`: the flags of docker compose v2, the engine's compose runtime
//! (`kiln_engine::compose::runtime`) doing the work, and compose's output: ` ✔ Container
//! accproj-web-1  Started` on a terminal, `Container accproj-web-1  Started` otherwise, and
//! `web-1  | line` log prefixes.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use kiln_engine::compose::runtime::{
    self, ComposeEvent, DownOptions, ProjectContainer, RemoveImages, RunOptions, UpOptions,
};
use kiln_engine::compose::{Project, Service};
use kiln_engine::containers::{ExecOptions, ExecStdio, LogsOptions};
use kiln_engine::{Engine, Error, PullOptions};
use kiln_executor::spec::StdioSpec;

use crate::commands::container::{attach_pty, SignalForwarder};
use crate::commands::display::{print_table, since};
use crate::progress::Mode;
use crate::render::{Rendering, View};

/// Flags of `compose up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Build images before starting containers.
    #[arg(long)]
    build: bool,
    /// Don't build an image, even if it's missing.
    #[arg(long)]
    no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed.
    #[arg(long)]
    force_recreate: bool,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Scale SERVICE to NUM instances (`SERVICE=NUM`).
    #[arg(long, value_name = "SERVICE=NUM")]
    scale: Vec<String>,
    /// Wait for services to be running|healthy (implies detached mode).
    #[arg(long)]
    wait: bool,
    /// Services.
    services: Vec<String>,
}

/// Flags of `compose down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section and anonymous volumes.
    #[arg(short = 'v', long)]
    volumes: bool,
    /// Remove images used by services: "local" (built ones) or "all".
    #[arg(long, value_name = "TYPE")]
    rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<u64>,
}

/// Flags of `compose ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all stopped containers.
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Display services.
    #[arg(long)]
    services: bool,
    /// Services.
    names: Vec<String>,
}

/// Flags of `compose logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long)]
    tail: Option<String>,
    /// Produce monochrome output.
    #[arg(long)]
    no_color: bool,
    /// Don't print prefix in logs.
    #[arg(long)]
    no_log_prefix: bool,
    /// Services.
    services: Vec<String>,
}

/// A list of services.
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Services.
    services: Vec<String>,
}

/// Flags of `compose exec`.
#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Run the command as this user.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Path to workdir directory for this command.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Detached mode.
    #[arg(short = 'd', long)]
    detach: bool,
    /// The service.
    service: String,
    /// The command and its arguments.
    #[arg(required = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Flags of `compose run`.
#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Automatically remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Don't start linked services.
    #[arg(long)]
    no_deps: bool,
    /// Run command with the service's ports enabled and mapped to the host.
    #[arg(long)]
    service_ports: bool,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    detach: bool,
    /// The service.
    service: String,
    /// The command and its arguments.
    #[arg(allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Flags of `compose stop` and `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<u64>,
    /// Services.
    services: Vec<String>,
}

/// Flags of `compose kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container.
    #[arg(short = 's', long, default_value = "SIGKILL")]
    signal: String,
    /// Services.
    services: Vec<String>,
}

/// Flags of `compose rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal.
    #[arg(short = 'f', long)]
    force: bool,
    /// Stop the containers, if required, before removing.
    #[arg(short = 's', long)]
    stop: bool,
    /// Services.
    services: Vec<String>,
}

/// Flags of `compose port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The protocol.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// The service.
    service: String,
    /// The private port.
    port: u16,
}

/// Prints compose events on standard error as docker compose v2 does.
struct Printer {
    tty: bool,
}

impl Printer {
    fn new() -> Printer {
        Printer {
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn print(&self, event: &ComposeEvent) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            // on a terminal only the finished steps, each with compose's check mark
            if event.done {
                let _ = writeln!(
                    err,
                    " \x1b[32m✔\x1b[0m {} {}  \x1b[32m{}\x1b[0m",
                    event.kind.word(),
                    event.name,
                    event.status
                );
            }
        } else {
            let _ = writeln!(
                err,
                " {} {}  {}",
                event.kind.word(),
                event.name,
                event.status
            );
        }
    }

    fn sink(&self) -> impl FnMut(&ComposeEvent) + '_ {
        move |e| self.print(e)
    }
}

/// The services named, checked against the project.
fn check_services(project: &Project, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        if project.service(name).is_none() {
            bail!("no such service: {name}");
        }
    }
    Ok(())
}

/// Builds one service's image as `kiln build` does, its output shown the same way (so a
/// rebuild shows `CACHED`).
fn build_service(engine: &Engine, project: &Project, service: &Service) -> anyhow::Result<()> {
    let Some(options) = runtime::build_options(project, service) else {
        return Ok(());
    };
    let mode = Mode::Auto.resolve();
    let rendering = Rendering::start(View {
        steps: mode,
        pulls: true,
        pushes: true,
        cache: true,
        written: true,
        id_on_stdout: false,
        unused_build_args: true,
    });
    let result = engine.build(options, rendering.progress());
    rendering.finish();
    match result {
        Ok(_) => Ok(()),
        Err(Error::Solve(failure)) => {
            eprintln!("------\n > {}:\n------", failure.step);
            Err(anyhow!(
                "service \"{}\" failed to build: failed to solve: {}",
                service.name,
                failure.message
            ))
        }
        Err(e) => Err(anyhow!("service \"{}\" failed to build: {e}", service.name)),
    }
}

/// Pulls a service's image.
fn pull_service(engine: &Engine, service: &Service) -> anyhow::Result<()> {
    let rendering = Rendering::start(View::transfer(false));
    let pulled = engine.pull(
        &PullOptions {
            reference: service.image_name(),
            platform: kiln_registry::Platform::host(),
            tls_verify: true,
            credentials: None,
        },
        rendering.progress(),
    );
    rendering.finish();
    pulled.map_err(|e| {
        anyhow!(
            "service \"{}\": pulling {}: {e}",
            service.name,
            service.image_name()
        )
    })?;
    Ok(())
}

/// Builds (when `build` or missing, unless `no_build`) or pulls (when missing) the images of
/// `services`.
fn prepare_images(
    engine: &Engine,
    project: &Project,
    services: &[&Service],
    build: bool,
    no_build: bool,
) -> anyhow::Result<()> {
    for service in services {
        let missing = engine.compose_image_missing(service);
        if service.build.is_some() && !no_build && (build || missing) {
            build_service(engine, project, service)?;
        } else if missing {
            pull_service(engine, service)?;
        }
    }
    Ok(())
}

fn parse_scale(items: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    items
        .iter()
        .map(|item| {
            let (name, n) = item
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid --scale {item:?}: want SERVICE=NUM"))?;
            Ok((
                name.to_string(),
                n.parse().map_err(|_| anyhow!("invalid --scale {item:?}"))?,
            ))
        })
        .collect()
}

/// `compose up`.
pub fn up(engine: &Engine, project: &Project, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let services = runtime::with_dependencies(project, &args.services)?;
    prepare_images(engine, project, &services, args.build, args.no_build)?;
    let printer = Printer::new();
    let options = UpOptions {
        services: args.services.clone(),
        force_recreate: args.force_recreate,
        remove_orphans: args.remove_orphans,
        scale: parse_scale(&args.scale)?,
        wait: args.wait,
        dependency_timeout: None,
    };
    engine.compose_up(project, &options, &mut printer.sink())?;
    if args.detach || args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    // attached: the project's logs until Ctrl-C (then stop it, as compose) or every
    // container has exited
    let interrupted = Arc::new(AtomicBool::new(false));
    install_interrupt(&interrupted)?;
    // every container of the services, also one that already ended (its output is shown)
    let containers = engine.compose_containers(&project.name, true, false)?;
    let selected: Vec<ProjectContainer> = containers
        .into_iter()
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .collect();
    let names: Vec<String> = selected.iter().map(prefix_name).collect();
    println!("Attaching to {}", names.join(", "));
    let followers = follow_logs(engine, &selected, false, None, false);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if interrupted.load(Ordering::SeqCst) {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            engine.compose_stop(project, &args.services, None, &mut printer.sink())?;
            return Ok(ExitCode::from(130));
        }
        let running = engine
            .compose_containers(&project.name, false, false)?
            .iter()
            .any(|c| selected.iter().any(|s| s.summary.id == c.summary.id));
        if !running {
            break;
        }
    }
    for f in followers {
        let _ = f.join();
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets `flag` on SIGINT or SIGTERM (a thread waits for them; the others block them).
fn install_interrupt(flag: &Arc<AtomicBool>) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    let flag = flag.clone();
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    Ok(())
}

/// compose's colors for log prefixes, in its order.
const COLORS: &[&str] = &["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

/// The log prefix of a container: `SERVICE-N` (a one-off's whole name).
fn prefix_name(c: &ProjectContainer) -> String {
    if c.oneoff || c.number == 0 {
        c.name()
    } else {
        format!("{}-{}", c.service, c.number)
    }
}

/// Follows (or reads) every container's log on a thread of its own, each line prefixed.
fn follow_logs(
    engine: &Engine,
    containers: &[ProjectContainer],
    timestamps: bool,
    tail: Option<usize>,
    no_prefix: bool,
) -> Vec<std::thread::JoinHandle<()>> {
    follow_logs_with(engine, containers, true, timestamps, tail, no_prefix, false)
}

fn follow_logs_with(
    engine: &Engine,
    containers: &[ProjectContainer],
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    no_prefix: bool,
    no_color: bool,
) -> Vec<std::thread::JoinHandle<()>> {
    let width = containers
        .iter()
        .map(|c| prefix_name(c).len())
        .max()
        .unwrap_or(0);
    let color = !no_color && std::io::stdout().is_terminal();
    let mut handles = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let prefix = if no_prefix {
            String::new()
        } else {
            let name = format!("{:<width$}", prefix_name(c));
            if color {
                format!("\x1b[{}m{name}  |\x1b[0m ", COLORS[i % COLORS.len()])
            } else {
                format!("{name}  | ")
            }
        };
        let root = engine.root().to_path_buf();
        let id = c.summary.id.clone();
        let options = LogsOptions {
            follow,
            tail,
            timestamps,
            ..LogsOptions::default()
        };
        handles.push(std::thread::spawn(move || {
            let engine = Engine::new(&root);
            let mut partial: Vec<u8> = Vec::new();
            let _ = engine.container_logs(&id, options, &mut |chunk| {
                partial.extend_from_slice(&chunk.bytes);
                while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=pos).collect();
                    let mut out = std::io::stdout().lock();
                    out.write_all(prefix.as_bytes())?;
                    out.write_all(&line)?;
                    out.flush()?;
                }
                Ok(())
            });
            if !partial.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(prefix.as_bytes());
                let _ = out.write_all(&partial);
                let _ = out.write_all(b"\n");
            }
        }));
    }
    handles
}

/// `compose down`.
pub fn down(engine: &Engine, project: &Project, args: &DownArgs) -> anyhow::Result<ExitCode> {
    let remove_images = match args.rmi.as_deref() {
        None => None,
        Some("local") => Some(RemoveImages::Local),
        Some("all") => Some(RemoveImages::All),
        Some(other) => bail!("invalid --rmi {other:?}: want local or all"),
    };
    // orphans are the project's too (found by its label): down removes them either way
    let _ = args.remove_orphans;
    let printer = Printer::new();
    engine.compose_down(
        project,
        &DownOptions {
            volumes: args.volumes,
            remove_images,
            timeout: args.timeout.map(Duration::from_secs),
        },
        &mut printer.sink(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `compose ps`.
pub fn ps(engine: &Engine, project: &Project, args: &PsArgs) -> anyhow::Result<ExitCode> {
    check_services(project, &args.names)?;
    let containers: Vec<ProjectContainer> = engine
        .compose_containers(&project.name, args.all, false)?
        .into_iter()
        .filter(|c| args.names.is_empty() || args.names.contains(&c.service))
        .collect();
    if args.services {
        let mut seen = Vec::new();
        for c in &containers {
            if !seen.contains(&c.service) {
                println!("{}", c.service);
                seen.push(c.service.clone());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        for c in &containers {
            println!("{}", c.summary.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            let s = &c.summary;
            let mut cmd = format!("\"{}\"", s.command);
            if cmd.chars().count() > 22 {
                cmd = format!("{}…\"", cmd.chars().take(19).collect::<String>());
            }
            let ports: Vec<String> = s
                .ports
                .iter()
                .map(|p| {
                    if p.public_port == 0 {
                        format!("{}/{}", p.private_port, p.kind)
                    } else {
                        format!("{}:{}->{}/{}", p.ip, p.public_port, p.private_port, p.kind)
                    }
                })
                .collect();
            vec![
                c.name(),
                s.image.clone(),
                cmd,
                c.service.clone(),
                since(s.created as i64),
                s.status.clone(),
                ports.join(", "),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `compose logs`.
pub fn logs(engine: &Engine, project: &Project, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    check_services(project, &args.services)?;
    let tail = match args.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse().map_err(|_| anyhow!("invalid --tail {n:?}"))?),
    };
    let containers: Vec<ProjectContainer> = engine
        .compose_containers(&project.name, true, false)?
        .into_iter()
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .collect();
    for handle in follow_logs_with(
        engine,
        &containers,
        args.follow,
        args.timestamps,
        tail,
        args.no_log_prefix,
        args.no_color,
    ) {
        let _ = handle.join();
    }
    Ok(ExitCode::SUCCESS)
}

/// `compose build`.
pub fn build(engine: &Engine, project: &Project, args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    check_services(project, &args.services)?;
    for service in &project.services {
        if args.services.is_empty() || args.services.contains(&service.name) {
            build_service(engine, project, service)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `compose pull`.
pub fn pull(engine: &Engine, project: &Project, args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    check_services(project, &args.services)?;
    for service in &project.services {
        if service.image.is_some()
            && (args.services.is_empty() || args.services.contains(&service.name))
        {
            pull_service(engine, service)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `compose exec`.
pub fn exec(engine: &Engine, project: &Project, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    check_services(project, std::slice::from_ref(&args.service))?;
    let container = engine.compose_service_container(&project.name, &args.service, args.index)?;
    let tty = !args.no_tty && !args.detach && std::io::stdin().is_terminal();
    let options = ExecOptions {
        cmd: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty,
    };
    let stdio = ExecStdio {
        stdin: if !args.detach && !tty {
            StdioSpec::Inherit
        } else {
            StdioSpec::Null
        },
        stdout: if args.detach {
            StdioSpec::Null
        } else {
            StdioSpec::Inherit
        },
        stderr: if args.detach {
            StdioSpec::Null
        } else {
            StdioSpec::Inherit
        },
    };
    let forward = SignalForwarder::install();
    let running = match engine.exec_in_container(&container.summary.id, &options, stdio) {
        Ok(r) => r,
        Err(Error::Start { code, message }) => {
            eprintln!("kiln: error: {message}");
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        Err(e) => return Err(e.into()),
    };
    let master = running.pty_master.as_ref().map(|m| m.as_raw_fd());
    forward.target(
        running.pid,
        master.map(|m| {
            Box::new(move || kiln_executor::pty::copy_winsize(0, m)) as Box<dyn Fn() + Send>
        }),
    );
    if let Some(m) = running.pty_master.as_ref() {
        attach_pty(m, true);
    }
    let code = running.wait()?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `compose run`.
pub fn run(engine: &Engine, project: &Project, args: &RunArgs) -> anyhow::Result<ExitCode> {
    check_services(project, std::slice::from_ref(&args.service))?;
    if let Some(service) = project.service(&args.service) {
        let mut services =
            runtime::with_dependencies(project, std::slice::from_ref(&args.service))?;
        if args.no_deps {
            services.retain(|s| s.name == service.name);
        }
        prepare_images(engine, project, &services, false, false)?;
    }
    let tty = !args.no_tty && !args.detach && std::io::stdin().is_terminal();
    let printer = Printer::new();
    let created = engine.compose_run_create(
        project,
        &args.service,
        &RunOptions {
            cmd: (!args.command.is_empty()).then(|| args.command.clone()),
            env: args.env.clone(),
            remove: args.rm,
            no_deps: args.no_deps,
            service_ports: args.service_ports,
            tty,
            interactive: !args.detach,
        },
        &mut printer.sink(),
    )?;
    if args.detach {
        engine.start_container(&created.id)?;
        println!("{}", created.name);
        return Ok(ExitCode::SUCCESS);
    }
    super::run::foreground(engine, &created.id, true, true, args.rm)
}

/// `compose start`.
pub fn start(engine: &Engine, project: &Project, args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new();
    engine.compose_start(project, &args.services, &mut printer.sink())?;
    Ok(ExitCode::SUCCESS)
}

/// `compose stop`.
pub fn stop(engine: &Engine, project: &Project, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new();
    engine.compose_stop(
        project,
        &args.services,
        args.timeout.map(Duration::from_secs),
        &mut printer.sink(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `compose restart`.
pub fn restart(engine: &Engine, project: &Project, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new();
    engine.compose_restart(
        project,
        &args.services,
        args.timeout.map(Duration::from_secs),
        &mut printer.sink(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `compose kill`.
pub fn kill(engine: &Engine, project: &Project, args: &KillArgs) -> anyhow::Result<ExitCode> {
    let printer = Printer::new();
    engine.compose_kill(project, &args.services, &args.signal, &mut printer.sink())?;
    Ok(ExitCode::SUCCESS)
}

/// `compose rm` (kiln asks no confirmation: `-f` is accepted and changes nothing).
pub fn rm(engine: &Engine, project: &Project, args: &RmArgs) -> anyhow::Result<ExitCode> {
    let _ = args.force;
    let printer = Printer::new();
    engine.compose_rm(project, &args.services, args.stop, &mut printer.sink())?;
    Ok(ExitCode::SUCCESS)
}

/// `compose images`.
pub fn images(engine: &Engine, project: &Project, args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    check_services(project, &args.services)?;
    let mut rows = Vec::new();
    for c in engine.compose_containers(&project.name, true, false)? {
        if !args.services.is_empty() && !args.services.contains(&c.service) {
            continue;
        }
        let (repo, tag) = split_tag(&c.summary.image);
        let id = c.summary.image_id.trim_start_matches("sha256:");
        let size = engine
            .inspect_image(&c.summary.image_id)
            .map(|i| super::display::human_size(i.size))
            .unwrap_or_default();
        rows.push(vec![
            c.name(),
            repo,
            tag,
            id.chars().take(12).collect(),
            size,
        ]);
    }
    print_table(
        &["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `name[:tag]` split (`latest` when untagged).
fn split_tag(image: &str) -> (String, String) {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// `compose top`.
pub fn top(engine: &Engine, project: &Project, args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    check_services(project, &args.services)?;
    for c in engine.compose_containers(&project.name, false, false)? {
        if !args.services.is_empty() && !args.services.contains(&c.service) {
            continue;
        }
        let top = engine.container_top(&c.summary.id, "")?;
        println!("{}", c.name());
        let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
        print_table(&titles, &top.processes);
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// `compose port`.
pub fn port(engine: &Engine, project: &Project, args: &PortArgs) -> anyhow::Result<ExitCode> {
    check_services(project, std::slice::from_ref(&args.service))?;
    let c = engine.compose_service_container(&project.name, &args.service, args.index)?;
    let found = c
        .summary
        .ports
        .iter()
        .find(|p| p.private_port == args.port && p.kind == args.protocol && p.public_port != 0)
        .ok_or_else(|| {
            anyhow!(
                "no port {}/{} for container {}",
                args.port,
                args.protocol,
                c.name()
            )
        })?;
    println!("{}:{}", found.ip, found.public_port);
    Ok(ExitCode::SUCCESS)
}
