"""``python -m lib ...``: the book's command line (:mod:`lib.book.cli`)."""

import sys

from .book.cli import main

if __name__ == "__main__":
    sys.exit(main())
