# buildah 1.28 has no heredocs: the files they make, written by printf.
FROM busybox
RUN mkdir /multi && printf 'first\n' > /multi/one.txt && printf 'second\n' > /multi/two.txt
RUN echo "from shebang script" > /shebang
RUN printf 'aaa\n' > /a.txt && printf 'bbb\n' > /b.txt
