//! The build-graph vocabulary: the few kinds of operation every Dockerfile
//! instruction compiles to, in the spirit of BuildKit's LLB.
//!
//! An operation describes *what* to do, never *how*: paths are POSIX paths
//! inside a root filesystem, owners are ids or names to look up in that root,
//! and secrets appear only by id. Everything in an [`Op`] goes into the
//! vertex's cache key, so nothing secret or machine-specific may live here.

use serde::{Deserialize, Serialize};

/// One operation of the build graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// A filesystem that comes from outside the graph: an image, the build
    /// context, or nothing at all.
    Source(SourceOp),
    /// A process run in the sandbox on top of its first input (a RUN step).
    Exec(ExecOp),
    /// Filesystem edits done without a container (COPY, ADD, WORKDIR's mkdir).
    File(FileOp),
    /// The layers of input 0 with those of every other input stacked on
    /// top, unchanged (BuildKit's MergeOp, for `COPY --link`): the upper
    /// inputs are built and cached without their base, and rebased here.
    Merge,
}

/// Where a source filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SourceOp {
    /// The empty filesystem (`FROM scratch`).
    Scratch,
    /// An image, named as the user wrote it and pinned to the manifest digest
    /// it resolved to (the digest, not the name, makes the cache key).
    Image {
        /// The reference as written, normalized (e.g. `docker.io/library/busybox:latest`).
        reference: String,
        /// The manifest digest the reference resolved to, once known.
        digest: Option<String>,
        /// The platform wanted, e.g. `linux/amd64`.
        platform: String,
        /// The chain ID of the image's layers (`rootfs.diff_ids`), once known.
        /// When set, it and the platform alone make the cache key: the same
        /// filesystem keys the same wherever and however the image was
        /// obtained (pulled gzip, imported plain, re-tagged, another machine).
        #[serde(default)]
        rootfs: Option<String>,
    },
    /// Files of a local directory (the build context or a named context).
    Local {
        /// Which local source: `context` for the build context.
        name: String,
        /// Only paths matching one of these patterns are read (empty: all).
        include: Vec<String>,
        /// Paths matching these `.dockerignore`-style patterns are skipped.
        exclude: Vec<String>,
    },
    /// One file downloaded over HTTP(S) (`ADD <url>`): a filesystem holding
    /// just `/<filename>`, mode 0600, its mtime the response's
    /// `Last-Modified` (else the Unix epoch), as BuildKit's HTTP source.
    /// Downloaded afresh by every build; what reads it keys on `checksum`
    /// when given, else on the downloaded content.
    Http {
        /// The URL.
        url: String,
        /// `--checksum`: the `sha256:<hex>` digest the content must have.
        checksum: Option<String>,
        /// The file's name: the last segment of the URL's path.
        filename: String,
    },
}

/// A process run in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOp {
    /// argv; for a shell-form RUN this is the SHELL plus the command.
    pub args: Vec<String>,
    /// `KEY=value` pairs, in the order the process sees them.
    pub env: Vec<String>,
    /// Working directory inside the root filesystem.
    pub cwd: String,
    /// `user[:group]` as the Dockerfile's USER gave it (empty: root).
    pub user: String,
    /// The network the step may use.
    pub network: NetworkMode,
    /// Whether the step runs with the default sandbox or with more privilege.
    pub security: SecurityMode,
    /// Mounts besides the root filesystem (which is input 0).
    pub mounts: Vec<Mount>,
}

/// The network a RUN step gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum NetworkMode {
    /// Outbound access through kiln's default network, as `docker build` gives.
    #[default]
    Default,
    /// Only a loopback interface.
    None,
    /// The host's network namespace.
    Host,
}

/// The privilege a RUN step runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum SecurityMode {
    /// Docker's default capabilities and seccomp profile.
    #[default]
    Sandbox,
    /// All capabilities, no seccomp (`RUN --security=insecure`).
    Insecure,
}

/// A mount of a RUN step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Absolute path inside the container.
    pub target: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What a RUN mount is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MountKind {
    /// A path of another input, bound into the container. Writes (when
    /// `readonly` is false) go to a throwaway copy, never back to the input.
    Bind {
        /// Index into the vertex's inputs.
        input: usize,
        /// Path inside that input.
        source: String,
        /// Whether the mount is read-only.
        readonly: bool,
    },
    /// A directory kept across builds under `--root`, keyed by `id`.
    /// Its content never enters a cache key.
    Cache {
        /// The cache's id (defaults to the target path).
        id: String,
        /// How concurrent builds share it.
        sharing: CacheSharing,
        /// Whether the mount is read-only.
        readonly: bool,
        /// Optional input whose path seeds an empty cache.
        from: Option<(usize, String)>,
        /// Mode of the cache directory when created.
        mode: u32,
        /// Owner of the cache directory when created.
        uid: u32,
        /// Group of the cache directory when created.
        gid: u32,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Size limit in bytes (0: the kernel's default).
        size: u64,
    },
    /// A secret file or variable, by id only: its content is never part of the graph.
    Secret {
        /// The secret's id (`--secret id=...`).
        id: String,
        /// Expose it as this environment variable instead of (or besides) a file.
        env: Option<String>,
        /// Fail the step when the secret is missing, unless optional.
        required: bool,
        /// File mode inside the container.
        mode: u32,
        /// Owner of the file.
        uid: u32,
        /// Group of the file.
        gid: u32,
    },
    /// An ssh-agent socket forwarded by id.
    Ssh {
        /// The ssh source id (`--ssh default`).
        id: String,
        /// Fail the step when the agent is missing, unless optional.
        required: bool,
        /// Socket mode inside the container.
        mode: u32,
        /// Owner of the socket.
        uid: u32,
        /// Group of the socket.
        gid: u32,
    },
}

/// How a cache mount is shared between concurrent users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum CacheSharing {
    /// Every user sees the same directory at once.
    #[default]
    Shared,
    /// A concurrent user gets its own fresh directory.
    Private,
    /// Users wait for each other.
    Locked,
}

/// A sequence of filesystem edits applied to input 0 (or to scratch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileOp {
    /// The edits, applied in order.
    pub actions: Vec<FileAction>,
}

/// Who owns a created file: numeric ids, or names looked up in the
/// destination's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// User name or numeric uid.
    pub user: String,
    /// Group name or numeric gid (none: the user's primary group).
    pub group: Option<String>,
}

/// One filesystem edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FileAction {
    /// Copy paths of input `input` onto the destination (COPY, ADD).
    Copy(CopyAction),
    /// Create a directory.
    Mkdir {
        /// Absolute path of the directory.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Create missing parents too.
        parents: bool,
        /// Owner of what is created.
        owner: Option<Owner>,
    },
    /// Create a file with the given content (heredoc COPY sources).
    Mkfile {
        /// Absolute path of the file.
        path: String,
        /// Permission bits.
        mode: u32,
        /// The content.
        data: Vec<u8>,
        /// Owner of the file.
        owner: Option<Owner>,
    },
    /// Remove a path.
    Rm {
        /// Absolute path to remove.
        path: String,
        /// Succeed when the path is missing.
        allow_not_found: bool,
    },
    /// Create a symlink.
    Symlink {
        /// The link's target, stored as given.
        target: String,
        /// Absolute path of the link.
        path: String,
    },
}

/// A COPY or ADD of paths from one input onto the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyAction {
    /// Index into the vertex's inputs of the filesystem copied from.
    pub input: usize,
    /// Source paths (wildcards allowed), relative to the input's root.
    pub sources: Vec<String>,
    /// Destination; a trailing `/` means "into this directory".
    pub dest: String,
    /// Owner override (`--chown`).
    pub owner: Option<Owner>,
    /// Mode override (`--chmod`), octal bits or a symbolic mode string.
    pub mode: Option<String>,
    /// Patterns excluded from the copy (`--exclude`).
    pub exclude: Vec<String>,
    /// Keep the sources' parent directories (`--parents`).
    pub parents: bool,
    /// Unpack local tar archives instead of copying them (ADD).
    pub unpack_archives: bool,
    /// Follow a symlink given directly as a source.
    pub follow_symlinks: bool,
}
