//! `kiln create`, `start`, `restart`, `wait` and `attach`: a container's life in steps, as
//! docker has them (`run` is create, attach, start and wait in one).

use std::process::ExitCode;
use std::time::Duration;

use kiln_engine::containers::WaitCondition;
use kiln_engine::Engine;

use crate::commands::run::{create_options, failed, foreground};
use crate::Globals;

/// Flags of `kiln start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach this terminal to the container's output (and exit with its code).
    #[arg(short, long)]
    attach: bool,
    /// Attach this terminal's input too.
    #[arg(short, long)]
    interactive: bool,
    /// Start the stopped containers whose restart policy docker's daemon would start at
    /// its own start (always; unless-stopped not stopped by the user; on-failure after a
    /// failure): what kiln-restart.service runs at boot.
    #[arg(long, conflicts_with_all = ["containers", "attach", "interactive"])]
    all: bool,
    /// With --all: only containers that pass these filters (as `kiln ps --filter`,
    /// e.g. restart-policy=always, label=K=V).
    #[arg(short, long, requires = "all")]
    filter: Vec<String>,
    /// Containers (names or ids).
    #[arg(required_unless_present = "all")]
    containers: Vec<String>,
}

/// Flags of `kiln restart`.
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Seconds to wait after the stop signal before killing (default: the container's
    /// --stop-timeout, else 10).
    #[arg(short, long)]
    time: Option<u64>,
    /// Containers (names or ids).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Containers (names or ids): the argument of `wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Containers (names or ids).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Flags of `kiln attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach this terminal's input.
    #[arg(long)]
    no_stdin: bool,
    /// The container (name or id).
    container: String,
}

/// `kiln create`: prints the new container's id.
pub fn create(globals: &Globals, args: crate::commands::run::Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    let options = match create_options(&args) {
        Ok(o) => o,
        Err(e) => return Ok(crate::commands::run::bad_flags(e)),
    };
    match engine.create_container(&options) {
        Ok(created) => {
            for w in &created.warnings {
                eprintln!("kiln: warning: {w}");
            }
            println!("{}", created.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(e)),
    }
}

/// Runs `each` on every container, printing its name on success and its error otherwise;
/// fails when one failed (docker's way for commands over several containers).
fn for_each(
    containers: &[String],
    mut each: impl FnMut(&str) -> kiln_engine::Result<String>,
) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for c in containers {
        match each(c) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

/// `kiln start`.
pub fn start(globals: &Globals, args: StartArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    if args.all {
        let mut filter = kiln_engine::containers::ContainerFilter::default();
        crate::commands::ps::add_filters(&mut filter, &args.filter)?;
        let mut code = ExitCode::SUCCESS;
        for started in engine.start_by_restart_policy(&filter)? {
            match started.outcome {
                Ok(_) => println!("{}", started.name),
                Err(e) => {
                    eprintln!(
                        "kiln: error: {}: {:#}",
                        started.name,
                        anyhow::Error::from(e)
                    );
                    code = ExitCode::FAILURE;
                }
            }
        }
        return Ok(code);
    }
    if args.attach || args.interactive {
        let [one] = args.containers.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        };
        let rec = engine.find_container(one)?;
        return foreground(&engine, &rec.id, args.interactive, true, rec.auto_remove);
    }
    Ok(for_each(&args.containers, |c| {
        engine.start_container(c).map(|_| c.to_string())
    }))
}

/// `kiln restart`.
pub fn restart(globals: &Globals, args: RestartArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    let timeout = args.time.map(Duration::from_secs);
    Ok(for_each(&args.containers, |c| {
        engine.restart_container(c, timeout).map(|_| c.to_string())
    }))
}

/// `kiln wait`: prints each container's exit code once it has exited.
pub fn wait(globals: &Globals, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    Ok(for_each(&args.containers, |c| {
        engine
            .wait_container(c, WaitCondition::NotRunning, None)
            .map(|o| o.exit_code.to_string())
    }))
}

/// `kiln attach`: this terminal on a running container until it exits.
pub fn attach(globals: &Globals, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    let rec = engine.find_container(&args.container)?;
    foreground(&engine, &rec.id, !args.no_stdin, false, rec.auto_remove)
}
