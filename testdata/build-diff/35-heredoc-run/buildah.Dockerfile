# buildah 1.28 has no heredocs: the same commands, one line each.
FROM busybox
RUN echo line1 > /heredoc && echo line2 >> /heredoc
RUN echo with-interpreter > /heredoc2
