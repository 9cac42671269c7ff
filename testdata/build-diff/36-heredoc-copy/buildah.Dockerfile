# buildah 1.28 has no heredocs: the files the heredocs make, from the context
# (an unquoted delimiter expands $NAME, a quoted one does not).
FROM busybox
ARG NAME=world
COPY for-buildah/greeting /greeting
COPY for-buildah/literal /literal
COPY --chmod=0755 for-buildah/script.sh /script.sh
