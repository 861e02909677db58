"""A loopback TCP proxy that can drop connections: the "network" between a connector and a
real server (Dovecot) in tests.

``refuse = True`` closes every new connection at once (server unreachable / dropping);
``stall = True`` accepts connections and never answers (a hung server: timeouts);
``cut_after = N`` forwards N bytes from the server on the next connection, then cuts it
(a connection lost in the middle of a FETCH); with ``keep_cutting`` every connection is cut so.
Both are checked per connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    target_port: int
    host: str = "127.0.0.1"
    refuse: bool = False
    stall: bool = False  # accept, then never answer (a hung server)
    cut_after: int | None = None  # bytes server->client, once (reset after use)
    keep_cutting: bool = False  # cut every connection after cut_after bytes, not only the next
    connections: int = 0
    cuts: int = 0
    port: int = 0
    _sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _open: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> TcpProxy:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, 0))
        s.listen(16)
        s.settimeout(0.2)
        self._sock = s
        self.port = int(s.getsockname()[1])
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for c in list(self._open):
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)  # wakes the pump threads blocked in recv
            with contextlib.suppress(OSError):
                c.close()
        for t in self._threads:
            t.join(2)
        if self._sock is not None:
            self._sock.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.refuse:
                client.close()
                continue
            if self.stall:
                self._open.append(client)  # held open, silent, until stop()
                continue
            budget = self.cut_after
            if not self.keep_cutting:
                self.cut_after = None
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._open += [client, upstream]
            for src, dst, limit in ((client, upstream, None), (upstream, client, budget)):
                t = threading.Thread(target=self._pump, args=(src, dst, limit), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
