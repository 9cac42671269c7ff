//! `kiln compose [-f FILE]... [-p NAME] [--project-directory DIR] [--env-file FILE]...
//! [--profile P]... COMMAND`: the compose project, loaded by the engine's compose module, as
//! docker compose v2 shows it (`config`) and runs it (`up`, `down`, `ps`, `logs`, `exec`,
//! `run`, ...: `kiln_engine::compose::runtime`); this module parses the flags and prints
//! the engine's events as compose's lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use kiln_engine::compose::{self, Project, ProjectOptions};

/// Flags of `kiln compose`, shared by its subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Compose configuration files, merged in order (default: compose.yaml or the other
    /// default names, and the override file next to it); `-` is standard input.
    // Not global: `logs -f` and `exec`'s flags use `-f` for their own, as compose's do; the
    // files are named before the subcommand (`kiln compose -f FILE up`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, the file's `name`, the directory's name).
    #[arg(short = 'p', long = "project-name", value_name = "NAME", global = true)]
    project_name: Option<String>,
    /// Alternate working directory (default: the first file's directory).
    #[arg(long = "project-directory", value_name = "DIR", global = true)]
    project_directory: Option<PathBuf>,
    /// Environment files to read instead of the project directory's `.env`.
    #[arg(long = "env-file", value_name = "FILE", global = true)]
    env_files: Vec<PathBuf>,
    /// Profiles to enable (default: COMPOSE_PROFILES).
    #[arg(long = "profile", value_name = "PROFILE", global = true)]
    profiles: Vec<String>,
    #[command(subcommand)]
    command: ComposeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ComposeCommand {
    /// Parse, resolve and render the compose files in canonical form.
    #[command(alias = "convert")]
    Config(ConfigArgs),
    /// Create and start containers.
    Up(super::compose_run::UpArgs),
    /// Stop and remove containers, networks.
    Down(super::compose_run::DownArgs),
    /// List containers.
    Ps(super::compose_run::PsArgs),
    /// View output from containers.
    Logs(super::compose_run::LogsArgs),
    /// Build or rebuild services.
    Build(super::compose_run::ServicesArgs),
    /// Pull service images.
    Pull(super::compose_run::ServicesArgs),
    /// Execute a command in a running container.
    Exec(super::compose_run::ExecArgs),
    /// Run a one-off command on a service.
    Run(super::compose_run::RunArgs),
    /// Start services.
    Start(super::compose_run::ServicesArgs),
    /// Stop services.
    Stop(super::compose_run::StopArgs),
    /// Restart service containers.
    Restart(super::compose_run::StopArgs),
    /// Force stop service containers.
    Kill(super::compose_run::KillArgs),
    /// Removes stopped service containers.
    Rm(super::compose_run::RmArgs),
    /// List images used by the created containers.
    Images(super::compose_run::ServicesArgs),
    /// Display the running processes.
    Top(super::compose_run::ServicesArgs),
    /// Print the public port for a port binding.
    Port(super::compose_run::PortArgs),
}

/// Flags of `kiln compose config`.
#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Only validate the configuration, print nothing.
    #[arg(short, long)]
    quiet: bool,
    /// Print the service names, one per line.
    #[arg(long)]
    services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    volumes: bool,
    /// Print the network names, one per line.
    #[arg(long)]
    networks: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    images: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Save to this file instead of printing.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// How `config` prints the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// YAML, as docker compose config.
    Yaml,
    /// JSON.
    Json,
}

/// The process environment, for interpolation (variables that are not UTF-8 are skipped:
/// a compose file cannot name them usefully).
fn process_environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

impl Args {
    fn options(&self) -> anyhow::Result<ProjectOptions> {
        // `-f -`: the file is standard input
        let mut contents = BTreeMap::new();
        if self.files.iter().any(|f| f.as_os_str() == "-") {
            let cwd = std::env::current_dir()?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            contents.insert(cwd.join("-"), text);
        }
        Ok(ProjectOptions {
            files: self.files.clone(),
            project_name: self.project_name.clone(),
            project_dir: self.project_directory.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            services: Vec::new(),
            scale: BTreeMap::new(),
            environment: process_environment(),
            cwd: None,
            contents,
        })
    }

    /// Loads the project, printing its warnings as docker compose does.
    pub(crate) fn load(&self) -> anyhow::Result<Project> {
        let project = compose::load(&self.options()?).map_err(kiln_engine::Error::from)?;
        for warning in &project.warnings {
            eprintln!("WARN[0000] {warning}");
        }
        Ok(project)
    }
}

/// Runs a `kiln compose` subcommand.
pub fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    use super::compose_run as r;
    let engine = kiln_engine::Engine::new(&globals.root);
    match &args.command {
        ComposeCommand::Up(a) => r::up(&engine, &args.load()?, a),
        ComposeCommand::Down(a) => r::down(&engine, &args.load()?, a),
        ComposeCommand::Ps(a) => r::ps(&engine, &args.load()?, a),
        ComposeCommand::Logs(a) => r::logs(&engine, &args.load()?, a),
        ComposeCommand::Build(a) => r::build(&engine, &args.load()?, a),
        ComposeCommand::Pull(a) => r::pull(&engine, &args.load()?, a),
        ComposeCommand::Exec(a) => r::exec(&engine, &args.load()?, a),
        ComposeCommand::Run(a) => r::run(&engine, &args.load()?, a),
        ComposeCommand::Start(a) => r::start(&engine, &args.load()?, a),
        ComposeCommand::Stop(a) => r::stop(&engine, &args.load()?, a),
        ComposeCommand::Restart(a) => r::restart(&engine, &args.load()?, a),
        ComposeCommand::Kill(a) => r::kill(&engine, &args.load()?, a),
        ComposeCommand::Rm(a) => r::rm(&engine, &args.load()?, a),
        ComposeCommand::Images(a) => r::images(&engine, &args.load()?, a),
        ComposeCommand::Top(a) => r::top(&engine, &args.load()?, a),
        ComposeCommand::Port(a) => r::port(&engine, &args.load()?, a),
        ComposeCommand::Config(config) => {
            let project = args.load()?;
            let text = render_config(&project, config)?;
            if config.quiet {
                return Ok(ExitCode::SUCCESS);
            }
            match &config.output {
                Some(path) => std::fs::write(path, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn lines<I: IntoIterator<Item = String>>(items: I) -> String {
    items.into_iter().map(|s| s + "\n").collect()
}

fn render_config(project: &Project, config: &ConfigArgs) -> anyhow::Result<String> {
    if config.services {
        return Ok(lines(project.services.iter().map(|s| s.name.clone())));
    }
    if config.volumes {
        return Ok(lines(project.volumes.keys().cloned()));
    }
    if config.networks {
        return Ok(lines(project.networks.keys().cloned()));
    }
    if config.images {
        return Ok(lines(project.services.iter().map(|s| s.image_name())));
    }
    Ok(match config.format {
        Format::Yaml => project.to_yaml(),
        Format::Json => serde_json::to_string_pretty(project)? + "\n",
    })
}
