//! Containers: create, start (through a supervisor process), attach, wait, stop, kill,
//! remove, exec, list and logs, as engine operations over the records under
//! `ROOT/containers`, plus the docker syntaxes of their configuration.

mod archive;
mod attach;
pub mod config;
mod create;
mod exec;
mod health;
mod inspect;
mod lifecycle;
mod list;
pub mod log;
mod logs;
mod restart;
mod settings;
mod stats;
mod supervisor;
mod top;
pub(crate) mod watch;

pub use archive::{go_file_mode, ArchiveOptions, PathStat, GO_MODE_DIR, GO_MODE_SYMLINK};
pub use attach::{Attachment, StdinConnector};
pub use create::{random_name, CreateOptions, Created};
pub use exec::{ExecOptions, ExecStdio};
pub use health::{Health, HealthFlags, HealthResult, Healthcheck, HEALTHY, STARTING, UNHEALTHY};
pub use inspect::{
    state_name, status_text, status_text_with_health, ContainerFilter, ContainerInspect,
    ContainerState, ContainerSummary, EndpointSummary, HealthSummary, MountPoint, PortSummary,
};
pub use lifecycle::{is_running, wait_exited, ExitWatch, WaitCondition, WaitOutcome};
pub use logs::LogsOptions;
pub use restart::{PolicyStart, RestartPolicy, ALWAYS, NO, ON_FAILURE, UNLESS_STOPPED};
pub use settings::{ContainerMount, ContainerSettings};
pub use stats::{
    CpuStats, CpuUsage, MemoryStats, PidsStats, StatsReport, StatsStream, ThrottlingData,
    STATS_INTERVAL,
};
pub use supervisor::{supervise, StartOutcome, SUPERVISOR_COMMAND};
pub use top::TopResult;

use kiln_executor::spec::{PortMapping, Protocol};

use crate::Error;

/// The executor's error as an engine error of the right kind: a missing container or volume
/// is [`Error::NotFound`] and a bad name [`Error::Invalid`] (HTTP 404 and 400 later), with the
/// executor's text unchanged; anything else stays an executor error.
pub(crate) fn from_executor(e: kiln_executor::Error) -> Error {
    match e {
        kiln_executor::Error::NotFound(m) => Error::NotFound(m),
        e @ kiln_executor::Error::Invalid { .. } => Error::Invalid(e.to_string()),
        e => Error::Executor(e),
    }
}

/// `IP:HOST->CONTAINER/PROTO`, as `docker ps` shows published ports.
pub fn port_strings(bound: &[PortMapping]) -> Vec<String> {
    bound
        .iter()
        .map(|p| {
            let proto = if p.protocol == Protocol::Udp {
                "udp"
            } else {
                "tcp"
            };
            format!(
                "{}:{}->{}/{proto}",
                p.host_ip, p.host_port, p.container_port
            )
        })
        .collect()
}
