"""`python -m erasediff.cli`: the same command line as the `erasediff` script."""

import sys

from erasediff.cli import main

sys.exit(main())
