"""
Only a forwarding module: `python -m mingpt.generate` (the command line's first name) still runs the command line,
which lives in mingpt/cli.py. Sampling itself, the library, is mingpt/generation.py. Nothing else belongs here.
"""

import sys

from mingpt.cli import main

if __name__ == "__main__":
    sys.exit(main())
