import sys

from studio.serve import main

sys.exit(main())
