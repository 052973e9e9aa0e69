import sys

from studio.export.job import main

sys.exit(main())
