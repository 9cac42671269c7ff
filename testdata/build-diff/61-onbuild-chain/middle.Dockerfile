FROM diff-onbuild-chain-base
ONBUILD RUN echo level2 > /level2
RUN echo middle > /middle
