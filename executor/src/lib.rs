//! kiln-executor: the included runtime that runs RUN steps and `kiln run`
//! containers: namespaces, an overlayfs rootfs, pivot_root, dropped
//! capabilities and a seccomp filter, with no runc and no daemon.
//!
//! Nothing lives here yet: the runtime issue fills it in.
