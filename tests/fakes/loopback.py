"""A loopback HTTP server for emulators: ThreadingHTTPServer on 127.0.0.1:0, bounded, self-stopping.

``LoopbackServer(handler_class)`` binds a free port on 127.0.0.1 only, serves in a daemon thread,
caps the number of connections handled at once, and stops itself after ``max_lifetime`` seconds
so a test that forgets to stop it cannot leave a server running. Use it as a context manager.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], limit: int):
        super().__init__(addr, handler)
        self._slots = threading.BoundedSemaphore(limit)
        self.owner: Any = None

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections are part of the fault injection; stay quiet about them.
        pass


class LoopbackServer:
    """Serve ``handler`` on 127.0.0.1; ``owner`` is reachable from handlers as ``self.server.owner``."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        owner: Any = None,
        max_connections: int = 32,
        max_lifetime: float = 900.0,
    ) -> None:
        self.httpd = _BoundedServer(("127.0.0.1", 0), handler, max_connections)
        self.httpd.owner = owner
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(max_lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> LoopbackServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for servers the code under test binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_connect(port: int) -> bool:
    """Does something accept TCP connections on 127.0.0.1:port (a server that has started)?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server process of ours: SIGTERM, then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
