# buildah 1.28 matches stage names case-sensitively; BuildKit lowercases them
# (AS Build, --from=BUILD and --from=build name one stage). Same build, one spelling.
FROM busybox AS build
RUN mkdir /ln-target && echo content > /ln-target/file && ln -s /ln-target /abs-link && ln -s ln-target/file /rel-file-link
FROM busybox
COPY --from=build /abs-link/file /via-abs-link
COPY --from=build /rel-file-link /via-rel-link
COPY --from=build /abs-link /link-itself
