"""python -m dmabuf_model: the same command line as the dmabuf-model script."""

from dmabuf_model.cli import main

main()
