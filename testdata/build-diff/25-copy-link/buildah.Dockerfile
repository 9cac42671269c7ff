# buildah 1.28 has no COPY --link: the same copies without it. --link only
# changes how the layer is made (on an empty base, merged), not the result.
FROM busybox
RUN mkdir -p /exists && echo old > /exists/l.txt
COPY l.txt /exists/
COPY l.txt /new/dir/
COPY --chown=2:3 --chmod=0700 l.txt /linked
