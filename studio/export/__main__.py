import sys

from studio.export.job import Cancelled, emit, install_cancel_handlers, main

install_cancel_handlers()  # before anything heavy is imported: Ctrl+C / SIGTERM cancel cleanly from the start
try:
    sys.exit(main())
except Cancelled:
    emit("error", message="export cancelled; nothing was written", hint="")
    sys.exit(1)
