"""``python -m studio.train CONFIG.json``: run one training job (see studio.train.job)."""
import sys

from studio.train.job import main

sys.exit(main())
