# buildah 1.28 takes only octal --chmod: the modes the symbolic ones give
# a 0644 file (u+x,g-r: 0704) and the files of a directory (go-rwx: 0600).
# BuildKit applies a symbolic mode to each copied file and subdirectory, not
# to the destination directory it creates (fsutil prepareTargetDir: 0755).
FROM busybox
COPY --chmod=0704 a.txt /sym
COPY --chmod=0600 dir /symdir
RUN chmod 0755 /symdir
