/* Escape attempts the busybox rootfs has no applet for. Built static by the
 * tests (cc -static) and copied into the test rootfs as /bin/escape.
 * Usage: escape ACTION [ARG]. Prints "ok" when the attempt succeeded, or
 * "errno=N" when the kernel refused it; exit status 0 either way. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/perf_event.h>

static int report(long rc) {
    if (rc < 0) printf("errno=%d\n", errno); else printf("ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *a = argv[1];
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(a, "keyctl")) return report(syscall(SYS_add_key, "user", "kiln", "x", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */));
    if (!strcmp(a, "keyctl-join")) return report(syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, "kiln"));
    if (!strcmp(a, "ptrace")) return report(ptrace(PTRACE_ATTACH, atoi(arg), 0, 0));
    if (!strcmp(a, "kexec")) return report(syscall(SYS_kexec_load, 0, 0, 0, 0));
    if (!strcmp(a, "kexec-file")) return report(syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
    if (!strcmp(a, "init-module")) return report(syscall(SYS_init_module, "", 0, ""));
    if (!strcmp(a, "finit-module")) {
        int fd = open("/bin/busybox", O_RDONLY);
        return report(syscall(SYS_finit_module, fd, "", 0));
    }
    if (!strcmp(a, "delete-module")) return report(syscall(SYS_delete_module, arg, 0));
    if (!strcmp(a, "unshare-user")) return report(unshare(CLONE_NEWUSER));
    if (!strcmp(a, "unshare-mnt")) return report(unshare(CLONE_NEWNS));
    if (!strcmp(a, "clone-newuser")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        return report(pid);
    }
    if (!strcmp(a, "clone3")) { long r = syscall(SYS_clone3, 0, 0); return report(r); }
    if (!strcmp(a, "setns")) { int fd = open(arg, O_RDONLY); if (fd < 0) return report(-1); return report(setns(fd, 0)); }
    if (!strcmp(a, "mount")) return report(mount("tmpfs", arg, "tmpfs", 0, ""));
    if (!strcmp(a, "umount")) return report(umount2(arg, MNT_DETACH));
    if (!strcmp(a, "pivot-root")) return report(syscall(SYS_pivot_root, "/", arg));
    if (!strcmp(a, "bpf")) return report(syscall(SYS_bpf, 0, 0, 0));
    if (!strcmp(a, "perf")) {
        struct perf_event_attr at; memset(&at, 0, sizeof at); at.size = sizeof at; at.type = PERF_TYPE_SOFTWARE;
        return report(syscall(SYS_perf_event_open, &at, 0, -1, -1, 0));
    }
    if (!strcmp(a, "vsock")) return report(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    if (!strcmp(a, "open-by-handle")) {
        char buf[sizeof(struct file_handle) + 8]; struct file_handle *h = (void *)buf; h->handle_bytes = 8; h->handle_type = 1; memset(h->f_handle, 0, 8);
        return report(syscall(SYS_open_by_handle_at, AT_FDCWD, h, O_RDONLY));
    }
    if (!strcmp(a, "sethostname")) return report(sethostname(arg, strlen(arg)));
    if (!strcmp(a, "tiocsti")) { char c = 'x'; return report(ioctl(0, 0x5412, &c)); }
    if (!strcmp(a, "chroot-escape")) {
        /* The classic breakout: chroot into a subdir while holding a
         * descriptor of the old root, walk up, chroot there; then read ARG. */
        mkdir("/tmp/esc", 0755);
        int fd = open("/", O_RDONLY | O_DIRECTORY);
        if (chroot("/tmp/esc") < 0) return report(-1);
        fchdir(fd);
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
        int f = open(arg, O_RDONLY);
        if (f < 0) return report(-1);
        char b[256] = {0}; read(f, b, sizeof b - 1); printf("read:%s\n", b); return 0;
    }
    if (!strcmp(a, "write-exe")) {
        /* Open every /proc/N/exe for writing (CVE-2019-5736's first step). */
        int opened = 0;
        for (int p = 1; p < 64; p++) {
            char path[64]; snprintf(path, sizeof path, "/proc/%d/exe", p);
            int f = open(path, O_WRONLY);
            if (f >= 0) { opened++; write(f, "#", 1); close(f); }
        }
        printf("opened=%d\n", opened); return 0;
    }
    if (!strcmp(a, "fds")) {
        /* Descriptors >= 3 open in this process (besides the one listing them). */
        int n = 0;
        for (int fd = 3; fd < 1024; fd++) if (fcntl(fd, F_GETFD) >= 0) { printf("fd %d\n", fd); n++; }
        printf("count=%d\n", n); return 0;
    }
    if (!strcmp(a, "unix-read")) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa; memset(&sa, 0, sizeof sa); sa.sun_family = AF_UNIX; strncpy(sa.sun_path, arg, sizeof sa.sun_path - 1);
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) return report(-1);
        char b[256] = {0}; read(s, b, sizeof b - 1); printf("%s", b); return 0;
    }
    if (!strcmp(a, "ids")) { uid_t r, e, s2; getresuid(&r, &e, &s2); printf("ruid=%d euid=%d\n", r, e); return 0; }
    fprintf(stderr, "unknown action %s\n", a);
    return 2;
}
