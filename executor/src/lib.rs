//! kiln-executor: the included runtime that runs RUN steps and `kiln run`
//! containers: namespaces, an overlayfs rootfs, pivot_root, dropped
//! capabilities and a seccomp filter, with no runc and no daemon.
//!
//! The entry point is [`launch::start`]: it takes a [`ContainerSpec`] (an OCI
//! runtime-spec [`oci_spec::runtime::Process`] plus the rootfs, mounts,
//! network and limits) and returns a [`launch::Running`] container whose
//! [`launch::Running::wait`] gives the exit code and cleans everything up.
//!
//! How a container is made (see `launch.rs` for the why of each step):
//! kiln forks a *holder* that unshares the namespaces, and the holder forks the
//! container's PID 1, which mounts its root inside its own mount namespace,
//! pivots into it, drops privileges and `execve`s the container's program
//! from the container's own filesystem. The host's kiln binary is never
//! executed inside the container.

#![deny(missing_docs)]

pub mod bridge;
pub mod caps;
pub mod cgroups;
pub mod error;
pub mod image;
pub mod launch;
pub mod mounts;
pub mod netlink;
pub mod network;
pub mod overlay;
pub mod proxy;
pub mod pty;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod user;
pub mod volume;

pub use error::{Error, Result};
pub use spec::{
    ContainerSpec, MountSpec, NetworkMode, NetworkSpec, PortMapping, Protocol, Resources, Rootfs,
    StdioSpec,
};
