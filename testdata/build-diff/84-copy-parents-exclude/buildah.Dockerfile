# buildah 1.28 has neither COPY --parents nor --exclude: the same files, copied one by one
# (--exclude patterns match paths relative to the copied source, so c means src/c).
FROM busybox
COPY src/a/b/f.txt /p/src/a/b/
COPY src/c/h.txt /p/src/c/
COPY src/a/b /no-logs/b
COPY src/a /no-c/a
