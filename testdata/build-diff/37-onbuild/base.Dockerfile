FROM busybox
RUN echo base > /base
ONBUILD RUN echo triggered > /triggered
ONBUILD COPY ctx.txt /from-onbuild.txt
ONBUILD ENV FROM_ONBUILD=1
