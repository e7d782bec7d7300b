"""``python -m modelgit.bench ZOO_DIR -o OUT`` (same as ``modelgit bench``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
