"""The lifecycle the tests' loopback HTTP fakes share: 127.0.0.1 on a free port, a daemon thread, a bounded life.

A fake subclasses :class:`LoopbackServer`, builds its ``ThreadingHTTPServer`` in ``start()`` and
hands it to :meth:`_serve`; ``stop()``, ``with`` and ``base_url`` come from here.
"""
from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    max_lifetime_s: float = 120.0
    _server: ThreadingHTTPServer | None = None
    _timer: threading.Timer | None = None

    def start(self) -> Any:
        raise NotImplementedError

    def _serve(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)  # bounded lifetime, even if a test forgets
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"
