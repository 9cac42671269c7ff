//! A seccomp filter equal in effect to docker's default profile.
//!
//! Why seccompiler rather than libseccomp: it is pure Rust (no C library or
//! headers to install, static builds stay easy), and it compiles the BPF
//! program once in the parent, so the container only makes one `seccomp(2)`
//! call before `execve` (start-up speed). What it costs: a filter checks one
//! architecture, so x86_64's i386 and x32 entry points are refused outright
//! (the process is killed) where docker allows them; that is stricter, and
//! 32-bit programs do not run in a kiln container.
//!
//! We load the program with our own `seccomp(2)` call because
//! `seccompiler::apply_filter` also turns on no_new_privs, which must stay
//! off by default (setuid programs keep working, as in docker).

use std::collections::BTreeMap;

use caps::{Capability, CapsHashSet};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::{Error, Result};

/// The compiled filters, in the order they must be loaded.
#[derive(Debug, Clone)]
pub struct Filters(Vec<BpfProgram>);

/// Clone flags that create namespaces: refused without CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `ioctl(fd, TIOCSTI)` pushes bytes into a terminal's input: with a host
/// terminal as stdio it types commands into the host's shell. Docker allows it;
/// we refuse it (stricter, and nothing legitimate in a build needs it).
const TIOCSTI: u64 = 0x5412;

/// Builds docker's default profile for a container keeping `caps`.
pub fn docker_default(caps: &CapsHashSet) -> Result<Filters> {
    let err = |e: seccompiler::BackendError| Error::Seccomp(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // An empty rule list matches the syscall whatever its arguments.
    let mut allow = |nr: i64| {
        rules.insert(nr, Vec::new());
    };
    for (_, nr) in ALLOWED {
        allow(*nr);
    }
    for (cap, list) in BY_CAPABILITY {
        if caps.contains(cap) {
            for (_, nr) in list.iter() {
                allow(*nr);
            }
        }
    }
    let cond = |idx: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, v: u64| {
        SeccompCondition::new(idx, len, op, v).map_err(err)
    };
    let rule = |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(err);
    // socket: every family but AF_ALG (38) and AF_VSOCK (40).
    rules.insert(
        libc::SYS_socket,
        vec![
            rule(vec![cond(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Lt,
                38,
            )?])?,
            rule(vec![cond(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                39,
            )?])?,
            rule(vec![cond(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Gt,
                40,
            )?])?,
        ],
    );
    // personality: only the harmless personas docker lists.
    let mut persona = Vec::new();
    for v in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        persona.push(rule(vec![cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            v,
        )?])?);
    }
    rules.insert(libc::SYS_personality, persona);
    let sys_admin = caps.contains(&Capability::CAP_SYS_ADMIN);
    if !sys_admin {
        // clone without namespace flags (fork and threads keep working).
        rules.insert(
            libc::SYS_clone,
            vec![rule(vec![cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                0,
            )?])?],
        );
    }
    let arch = TargetArch::x86_64;
    let main = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(err)?;
    let mut programs: Vec<BpfProgram> = vec![main.try_into().map_err(err)?];
    let tiocsti = SeccompFilter::new(
        BTreeMap::from([(
            libc::SYS_ioctl,
            vec![rule(vec![cond(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                TIOCSTI,
            )?])?],
        )]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    programs.push(tiocsti.try_into().map_err(err)?);
    if !sys_admin {
        // clone3 passes its flags in memory a filter cannot read: docker makes
        // it fail with ENOSYS so libc falls back to clone, whose flags we check.
        // Loaded last, so its ENOSYS wins over the main filter's EPERM.
        let clone3 = SeccompFilter::new(
            BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )
        .map_err(err)?;
        programs.push(clone3.try_into().map_err(err)?);
    }
    Ok(Filters(programs))
}

impl Filters {
    /// Installs the filters on the calling thread without touching
    /// no_new_privs (the caller needs CAP_SYS_ADMIN or no_new_privs set).
    pub(crate) fn load(&self) -> Result<()> {
        for prog in &self.0 {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: fprog points at a live, well-formed BPF program for the
            // duration of the call; the kernel copies it.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc != 0 {
                return Err(Error::sys("load seccomp filter", nix::Error::last()));
            }
        }
        Ok(())
    }
}

/// Syscalls docker's default profile allows unconditionally on x86_64.
pub(crate) const ALLOWED: &[(&str, i64)] = &[
    ("accept", libc::SYS_accept),
    ("accept4", libc::SYS_accept4),
    ("access", libc::SYS_access),
    ("adjtimex", libc::SYS_adjtimex),
    ("alarm", libc::SYS_alarm),
    ("arch_prctl", libc::SYS_arch_prctl),
    ("bind", libc::SYS_bind),
    ("brk", libc::SYS_brk),
    ("cachestat", 451),
    ("capget", libc::SYS_capget),
    ("capset", libc::SYS_capset),
    ("chdir", libc::SYS_chdir),
    ("chmod", libc::SYS_chmod),
    ("chown", libc::SYS_chown),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("clock_getres", libc::SYS_clock_getres),
    ("clock_gettime", libc::SYS_clock_gettime),
    ("clock_nanosleep", libc::SYS_clock_nanosleep),
    ("close", libc::SYS_close),
    ("close_range", libc::SYS_close_range),
    ("connect", libc::SYS_connect),
    ("copy_file_range", libc::SYS_copy_file_range),
    ("creat", libc::SYS_creat),
    ("dup", libc::SYS_dup),
    ("dup2", libc::SYS_dup2),
    ("dup3", libc::SYS_dup3),
    ("epoll_create", libc::SYS_epoll_create),
    ("epoll_create1", libc::SYS_epoll_create1),
    ("epoll_ctl", libc::SYS_epoll_ctl),
    ("epoll_ctl_old", libc::SYS_epoll_ctl_old),
    ("epoll_pwait", libc::SYS_epoll_pwait),
    ("epoll_pwait2", libc::SYS_epoll_pwait2),
    ("epoll_wait", libc::SYS_epoll_wait),
    ("epoll_wait_old", libc::SYS_epoll_wait_old),
    ("eventfd", libc::SYS_eventfd),
    ("eventfd2", libc::SYS_eventfd2),
    ("execve", libc::SYS_execve),
    ("execveat", libc::SYS_execveat),
    ("exit", libc::SYS_exit),
    ("exit_group", libc::SYS_exit_group),
    ("faccessat", libc::SYS_faccessat),
    ("faccessat2", libc::SYS_faccessat2),
    ("fadvise64", libc::SYS_fadvise64),
    ("fallocate", libc::SYS_fallocate),
    ("fanotify_mark", libc::SYS_fanotify_mark),
    ("fchdir", libc::SYS_fchdir),
    ("fchmod", libc::SYS_fchmod),
    ("fchmodat", libc::SYS_fchmodat),
    ("fchmodat2", libc::SYS_fchmodat2),
    ("fchown", libc::SYS_fchown),
    ("fchownat", libc::SYS_fchownat),
    ("fcntl", libc::SYS_fcntl),
    ("fdatasync", libc::SYS_fdatasync),
    ("fgetxattr", libc::SYS_fgetxattr),
    ("flistxattr", libc::SYS_flistxattr),
    ("flock", libc::SYS_flock),
    ("fork", libc::SYS_fork),
    ("fremovexattr", libc::SYS_fremovexattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("fstat", libc::SYS_fstat),
    ("fstatfs", libc::SYS_fstatfs),
    ("fsync", libc::SYS_fsync),
    ("ftruncate", libc::SYS_ftruncate),
    ("futex", libc::SYS_futex),
    ("futex_requeue", 456),
    ("futex_wait", 455),
    ("futex_waitv", libc::SYS_futex_waitv),
    ("futex_wake", 454),
    ("futimesat", libc::SYS_futimesat),
    ("get_robust_list", libc::SYS_get_robust_list),
    ("get_thread_area", libc::SYS_get_thread_area),
    ("getcpu", libc::SYS_getcpu),
    ("getcwd", libc::SYS_getcwd),
    ("getdents", libc::SYS_getdents),
    ("getdents64", libc::SYS_getdents64),
    ("getegid", libc::SYS_getegid),
    ("geteuid", libc::SYS_geteuid),
    ("getgid", libc::SYS_getgid),
    ("getgroups", libc::SYS_getgroups),
    ("getitimer", libc::SYS_getitimer),
    ("getpeername", libc::SYS_getpeername),
    ("getpgid", libc::SYS_getpgid),
    ("getpgrp", libc::SYS_getpgrp),
    ("getpid", libc::SYS_getpid),
    ("getppid", libc::SYS_getppid),
    ("getpriority", libc::SYS_getpriority),
    ("getrandom", libc::SYS_getrandom),
    ("getresgid", libc::SYS_getresgid),
    ("getresuid", libc::SYS_getresuid),
    ("getrlimit", libc::SYS_getrlimit),
    ("getrusage", libc::SYS_getrusage),
    ("getsid", libc::SYS_getsid),
    ("getsockname", libc::SYS_getsockname),
    ("getsockopt", libc::SYS_getsockopt),
    ("gettid", libc::SYS_gettid),
    ("gettimeofday", libc::SYS_gettimeofday),
    ("getuid", libc::SYS_getuid),
    ("getxattr", libc::SYS_getxattr),
    ("getxattrat", 464),
    ("inotify_add_watch", libc::SYS_inotify_add_watch),
    ("inotify_init", libc::SYS_inotify_init),
    ("inotify_init1", libc::SYS_inotify_init1),
    ("inotify_rm_watch", libc::SYS_inotify_rm_watch),
    ("io_cancel", libc::SYS_io_cancel),
    ("io_destroy", libc::SYS_io_destroy),
    ("io_getevents", libc::SYS_io_getevents),
    ("io_pgetevents", 333),
    ("io_setup", libc::SYS_io_setup),
    ("io_submit", libc::SYS_io_submit),
    ("ioctl", libc::SYS_ioctl),
    ("ioprio_get", libc::SYS_ioprio_get),
    ("ioprio_set", libc::SYS_ioprio_set),
    ("kill", libc::SYS_kill),
    ("landlock_add_rule", libc::SYS_landlock_add_rule),
    ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
    ("landlock_restrict_self", libc::SYS_landlock_restrict_self),
    ("lchown", libc::SYS_lchown),
    ("lgetxattr", libc::SYS_lgetxattr),
    ("link", libc::SYS_link),
    ("linkat", libc::SYS_linkat),
    ("listen", libc::SYS_listen),
    ("listmount", 458),
    ("listxattr", libc::SYS_listxattr),
    ("listxattrat", 465),
    ("llistxattr", libc::SYS_llistxattr),
    ("lremovexattr", libc::SYS_lremovexattr),
    ("lseek", libc::SYS_lseek),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("lstat", libc::SYS_lstat),
    ("madvise", libc::SYS_madvise),
    ("map_shadow_stack", 453),
    ("membarrier", libc::SYS_membarrier),
    ("memfd_create", libc::SYS_memfd_create),
    ("memfd_secret", libc::SYS_memfd_secret),
    ("mincore", libc::SYS_mincore),
    ("mkdir", libc::SYS_mkdir),
    ("mkdirat", libc::SYS_mkdirat),
    ("mknod", libc::SYS_mknod),
    ("mknodat", libc::SYS_mknodat),
    ("mlock", libc::SYS_mlock),
    ("mlock2", libc::SYS_mlock2),
    ("mlockall", libc::SYS_mlockall),
    ("mmap", libc::SYS_mmap),
    ("modify_ldt", libc::SYS_modify_ldt),
    ("mprotect", libc::SYS_mprotect),
    ("mq_getsetattr", libc::SYS_mq_getsetattr),
    ("mq_notify", libc::SYS_mq_notify),
    ("mq_open", libc::SYS_mq_open),
    ("mq_timedreceive", libc::SYS_mq_timedreceive),
    ("mq_timedsend", libc::SYS_mq_timedsend),
    ("mq_unlink", libc::SYS_mq_unlink),
    ("mremap", libc::SYS_mremap),
    ("mseal", libc::SYS_mseal),
    ("msgctl", libc::SYS_msgctl),
    ("msgget", libc::SYS_msgget),
    ("msgrcv", libc::SYS_msgrcv),
    ("msgsnd", libc::SYS_msgsnd),
    ("msync", libc::SYS_msync),
    ("munlock", libc::SYS_munlock),
    ("munlockall", libc::SYS_munlockall),
    ("munmap", libc::SYS_munmap),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("nanosleep", libc::SYS_nanosleep),
    ("newfstatat", libc::SYS_newfstatat),
    ("open", libc::SYS_open),
    ("openat", libc::SYS_openat),
    ("openat2", libc::SYS_openat2),
    ("pause", libc::SYS_pause),
    ("pidfd_open", libc::SYS_pidfd_open),
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
    ("pipe", libc::SYS_pipe),
    ("pipe2", libc::SYS_pipe2),
    ("pkey_alloc", libc::SYS_pkey_alloc),
    ("pkey_free", libc::SYS_pkey_free),
    ("pkey_mprotect", libc::SYS_pkey_mprotect),
    ("poll", libc::SYS_poll),
    ("ppoll", libc::SYS_ppoll),
    ("prctl", libc::SYS_prctl),
    ("pread64", libc::SYS_pread64),
    ("preadv", libc::SYS_preadv),
    ("preadv2", libc::SYS_preadv2),
    ("prlimit64", libc::SYS_prlimit64),
    ("process_mrelease", libc::SYS_process_mrelease),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pselect6", libc::SYS_pselect6),
    ("ptrace", libc::SYS_ptrace),
    ("pwrite64", libc::SYS_pwrite64),
    ("pwritev", libc::SYS_pwritev),
    ("pwritev2", libc::SYS_pwritev2),
    ("read", libc::SYS_read),
    ("readahead", libc::SYS_readahead),
    ("readlink", libc::SYS_readlink),
    ("readlinkat", libc::SYS_readlinkat),
    ("readv", libc::SYS_readv),
    ("recvfrom", libc::SYS_recvfrom),
    ("recvmmsg", libc::SYS_recvmmsg),
    ("recvmsg", libc::SYS_recvmsg),
    ("remap_file_pages", libc::SYS_remap_file_pages),
    ("removexattr", libc::SYS_removexattr),
    ("removexattrat", 466),
    ("rename", libc::SYS_rename),
    ("renameat", libc::SYS_renameat),
    ("renameat2", libc::SYS_renameat2),
    ("restart_syscall", libc::SYS_restart_syscall),
    ("rmdir", libc::SYS_rmdir),
    ("rseq", libc::SYS_rseq),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigpending", libc::SYS_rt_sigpending),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("rt_sigsuspend", libc::SYS_rt_sigsuspend),
    ("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
    ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
    ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
    ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
    ("sched_getaffinity", libc::SYS_sched_getaffinity),
    ("sched_getattr", libc::SYS_sched_getattr),
    ("sched_getparam", libc::SYS_sched_getparam),
    ("sched_getscheduler", libc::SYS_sched_getscheduler),
    ("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
    ("sched_setaffinity", libc::SYS_sched_setaffinity),
    ("sched_setattr", libc::SYS_sched_setattr),
    ("sched_setparam", libc::SYS_sched_setparam),
    ("sched_setscheduler", libc::SYS_sched_setscheduler),
    ("sched_yield", libc::SYS_sched_yield),
    ("seccomp", libc::SYS_seccomp),
    ("select", libc::SYS_select),
    ("semctl", libc::SYS_semctl),
    ("semget", libc::SYS_semget),
    ("semop", libc::SYS_semop),
    ("semtimedop", libc::SYS_semtimedop),
    ("sendfile", libc::SYS_sendfile),
    ("sendmmsg", libc::SYS_sendmmsg),
    ("sendmsg", libc::SYS_sendmsg),
    ("sendto", libc::SYS_sendto),
    ("set_robust_list", libc::SYS_set_robust_list),
    ("set_thread_area", libc::SYS_set_thread_area),
    ("set_tid_address", libc::SYS_set_tid_address),
    ("setfsgid", libc::SYS_setfsgid),
    ("setfsuid", libc::SYS_setfsuid),
    ("setgid", libc::SYS_setgid),
    ("setgroups", libc::SYS_setgroups),
    ("setitimer", libc::SYS_setitimer),
    ("setpgid", libc::SYS_setpgid),
    ("setpriority", libc::SYS_setpriority),
    ("setregid", libc::SYS_setregid),
    ("setresgid", libc::SYS_setresgid),
    ("setresuid", libc::SYS_setresuid),
    ("setreuid", libc::SYS_setreuid),
    ("setrlimit", libc::SYS_setrlimit),
    ("setsid", libc::SYS_setsid),
    ("setsockopt", libc::SYS_setsockopt),
    ("setuid", libc::SYS_setuid),
    ("setxattr", libc::SYS_setxattr),
    ("setxattrat", 463),
    ("shmat", libc::SYS_shmat),
    ("shmctl", libc::SYS_shmctl),
    ("shmdt", libc::SYS_shmdt),
    ("shmget", libc::SYS_shmget),
    ("shutdown", libc::SYS_shutdown),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("signalfd", libc::SYS_signalfd),
    ("signalfd4", libc::SYS_signalfd4),
    ("socketpair", libc::SYS_socketpair),
    ("splice", libc::SYS_splice),
    ("stat", libc::SYS_stat),
    ("statfs", libc::SYS_statfs),
    ("statmount", 457),
    ("statx", libc::SYS_statx),
    ("symlink", libc::SYS_symlink),
    ("symlinkat", libc::SYS_symlinkat),
    ("sync", libc::SYS_sync),
    ("sync_file_range", libc::SYS_sync_file_range),
    ("syncfs", libc::SYS_syncfs),
    ("sysinfo", libc::SYS_sysinfo),
    ("tee", libc::SYS_tee),
    ("tgkill", libc::SYS_tgkill),
    ("time", libc::SYS_time),
    ("timer_create", libc::SYS_timer_create),
    ("timer_delete", libc::SYS_timer_delete),
    ("timer_getoverrun", libc::SYS_timer_getoverrun),
    ("timer_gettime", libc::SYS_timer_gettime),
    ("timer_settime", libc::SYS_timer_settime),
    ("timerfd_create", libc::SYS_timerfd_create),
    ("timerfd_gettime", libc::SYS_timerfd_gettime),
    ("timerfd_settime", libc::SYS_timerfd_settime),
    ("times", libc::SYS_times),
    ("tkill", libc::SYS_tkill),
    ("truncate", libc::SYS_truncate),
    ("umask", libc::SYS_umask),
    ("uname", libc::SYS_uname),
    ("unlink", libc::SYS_unlink),
    ("unlinkat", libc::SYS_unlinkat),
    ("uretprobe", 335),
    ("utime", libc::SYS_utime),
    ("utimensat", libc::SYS_utimensat),
    ("utimes", libc::SYS_utimes),
    ("vfork", libc::SYS_vfork),
    ("vmsplice", libc::SYS_vmsplice),
    ("wait4", libc::SYS_wait4),
    ("waitid", libc::SYS_waitid),
    ("write", libc::SYS_write),
    ("writev", libc::SYS_writev),
];
/// Syscalls docker allows only when the container keeps a capability.
pub(crate) const BY_CAPABILITY: &[(caps::Capability, &[(&str, i64)])] = &[
    (
        caps::Capability::CAP_DAC_READ_SEARCH,
        &[("open_by_handle_at", libc::SYS_open_by_handle_at)],
    ),
    (
        caps::Capability::CAP_SYS_ADMIN,
        &[
            ("bpf", libc::SYS_bpf),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("fanotify_init", libc::SYS_fanotify_init),
            ("fsconfig", libc::SYS_fsconfig),
            ("fsmount", libc::SYS_fsmount),
            ("fsopen", libc::SYS_fsopen),
            ("fspick", libc::SYS_fspick),
            ("lookup_dcookie", libc::SYS_lookup_dcookie),
            ("lsm_get_self_attr", 459),
            ("lsm_list_modules", 461),
            ("lsm_set_self_attr", 460),
            ("mount", libc::SYS_mount),
            ("mount_setattr", libc::SYS_mount_setattr),
            ("move_mount", libc::SYS_move_mount),
            ("open_tree", libc::SYS_open_tree),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("quotactl", libc::SYS_quotactl),
            ("quotactl_fd", libc::SYS_quotactl_fd),
            ("setdomainname", libc::SYS_setdomainname),
            ("sethostname", libc::SYS_sethostname),
            ("setns", libc::SYS_setns),
            ("syslog", libc::SYS_syslog),
            ("umount2", libc::SYS_umount2),
            ("unshare", libc::SYS_unshare),
        ],
    ),
    (
        caps::Capability::CAP_SYS_BOOT,
        &[("reboot", libc::SYS_reboot)],
    ),
    (
        caps::Capability::CAP_SYS_CHROOT,
        &[("chroot", libc::SYS_chroot)],
    ),
    (
        caps::Capability::CAP_SYS_MODULE,
        &[
            ("delete_module", libc::SYS_delete_module),
            ("init_module", libc::SYS_init_module),
            ("finit_module", libc::SYS_finit_module),
        ],
    ),
    (caps::Capability::CAP_SYS_PACCT, &[("acct", libc::SYS_acct)]),
    (
        caps::Capability::CAP_SYS_PTRACE,
        &[
            ("kcmp", libc::SYS_kcmp),
            ("pidfd_getfd", libc::SYS_pidfd_getfd),
            ("process_madvise", libc::SYS_process_madvise),
            ("process_vm_readv", libc::SYS_process_vm_readv),
            ("process_vm_writev", libc::SYS_process_vm_writev),
            ("ptrace", libc::SYS_ptrace),
        ],
    ),
    (
        caps::Capability::CAP_SYS_RAWIO,
        &[("iopl", libc::SYS_iopl), ("ioperm", libc::SYS_ioperm)],
    ),
    (
        caps::Capability::CAP_SYS_TIME,
        &[
            ("settimeofday", libc::SYS_settimeofday),
            ("clock_settime", libc::SYS_clock_settime),
        ],
    ),
    (
        caps::Capability::CAP_SYS_TTY_CONFIG,
        &[("vhangup", libc::SYS_vhangup)],
    ),
    (
        caps::Capability::CAP_SYS_NICE,
        &[
            ("get_mempolicy", libc::SYS_get_mempolicy),
            ("mbind", libc::SYS_mbind),
            ("set_mempolicy", libc::SYS_set_mempolicy),
            ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
        ],
    ),
    (
        caps::Capability::CAP_SYSLOG,
        &[("syslog", libc::SYS_syslog)],
    ),
    (caps::Capability::CAP_BPF, &[("bpf", libc::SYS_bpf)]),
    (
        caps::Capability::CAP_PERFMON,
        &[("perf_event_open", libc::SYS_perf_event_open)],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_compiles_and_grows_with_capabilities() {
        let base = docker_default(&crate::caps::docker_default()).unwrap();
        assert_eq!(base.0.len(), 3);
        let mut more = crate::caps::docker_default();
        more.insert(Capability::CAP_SYS_ADMIN);
        let admin = docker_default(&more).unwrap();
        assert_eq!(admin.0.len(), 2);
        assert!(admin.0[0].len() > base.0[0].len() - 10);
    }

    #[test]
    fn table_has_no_dangerous_syscalls_unconditionally() {
        for bad in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "kexec_load",
            "init_module",
            "keyctl",
            "add_key",
            "pivot_root",
            "bpf",
        ] {
            assert!(
                !ALLOWED.iter().any(|(n, _)| *n == bad),
                "{bad} must not be allowed"
            );
        }
    }
}
