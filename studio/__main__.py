"""`python -m studio` is the same as the `distill-studio` command."""
import sys

from studio.cli import main

sys.exit(main())
