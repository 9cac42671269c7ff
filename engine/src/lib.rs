//! kiln's engine: every operation kiln offers (build, pull, push, images, containers,
//! volumes) as a library, behind both faces: the `kiln` CLI and the Engine API service.
//!
//! An operation is a method of [`Engine`] that takes typed options, returns a typed result
//! or an [`Error`], and reports progress as [`Event`]s to a [`Progress`]. The engine never
//! prints, never reads the terminal and never exits: rendering, exit codes and HTTP are the
//! faces' jobs, and neither face holds logic the other lacks (as podman's libpod sits behind
//! both `podman` and its REST service).
//!
//! The engine is not a daemon: every operation works on the store under `--root` directly,
//! and any number of processes (CLIs and a service) may do so at once.

pub mod activity;
pub mod build;
pub mod build_cache;
pub mod compose;
pub mod containers;
mod error;
pub mod events;
pub mod images;
pub mod import_changes;
pub mod login;
pub mod networks;
pub mod pull;
pub mod push;
pub mod registry_store;
mod root;
pub mod system;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use build::{BuildContext, BuildOptions, BuildResult, DockerfileSource};
pub use error::{Error, Result, ResultExt, SolveFailure};
pub use events::{Event, LayerStatus, Progress, Transfer};
/// docker's `AuthConfig`: registry credentials handed in with one operation.
pub use kiln_registry::auth::RegistryAuth;
pub use login::LoginCheck;
pub use pull::{PullOptions, Pulled};
pub use push::{PushOptions, Pushed};
pub use root::default_root;

/// kiln's operations on one state directory (`--root`).
pub struct Engine {
    root: PathBuf,
    /// The image store, opened on first use (commands such as `kiln login` never need it).
    store: Mutex<Option<kiln_cache::Store>>,
    /// The kiln binary that containers' supervisors run (this process's own by default).
    program: Option<PathBuf>,
}

impl Engine {
    /// An engine on the state directory `root`. Nothing is opened yet.
    pub fn new(root: impl Into<PathBuf>) -> Engine {
        Engine {
            root: root.into(),
            store: Mutex::new(None),
            program: None,
        }
    }

    /// Uses `program` (a kiln binary) to run containers' supervisors, instead of this
    /// process's own executable (for tests whose executable is not kiln).
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Engine {
        self.program = Some(program.into());
        self
    }

    /// The kiln binary that runs supervisors.
    pub fn program(&self) -> PathBuf {
        self.program.clone().unwrap_or_else(|| {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
        })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image store (blobs, layers, images, build cache), opened once per engine.
    pub fn store(&self) -> Result<kiln_cache::Store> {
        let mut slot = self
            .store
            .lock()
            .map_err(|_| Error::Internal("the store handle's lock was poisoned".into()))?;
        if let Some(store) = slot.as_ref() {
            return Ok(store.clone());
        }
        let store = kiln_cache::Store::open(&self.root)
            .with_context(|| format!("opening the store at {}", self.root.display()))?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The containers' records (ids, names, state), under `ROOT/containers`.
    pub fn containers(&self) -> Result<kiln_executor::state::Store> {
        Ok(kiln_executor::state::Store::open(&self.root)?)
    }
}
