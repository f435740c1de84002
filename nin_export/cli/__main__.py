"""``python -m nin_export.cli``: the same as ``nin-export``."""

from . import main

main()
