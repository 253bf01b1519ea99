"""``python -m mingpt.cli``: the generate command (mingpt/cli/generate.py)."""

import sys

from mingpt.cli.generate import main

sys.exit(main())
