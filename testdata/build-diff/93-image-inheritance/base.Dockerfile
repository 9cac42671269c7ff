FROM busybox
RUN mkdir -p /srv/base && echo from-base > /srv/base/file
WORKDIR /srv/base
USER nobody
STOPSIGNAL SIGTERM
LABEL from=base keep=yes
HEALTHCHECK --interval=7s CMD true
EXPOSE 8000
ENV BASE_ENV=1
CMD ["base"]
