FROM busybox
ONBUILD ARG OB_ARG=default
ONBUILD RUN echo "level1 $OB_ARG" > /level1
ONBUILD WORKDIR /onbuild-wd
ONBUILD COPY c.txt .
