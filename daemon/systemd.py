"""sd_notify without dependencies: READY, RELOADING, STOPPING, STATUS and WATCHDOG datagrams.

A no-op when ``$NOTIFY_SOCKET`` is unset (a terminal, a test). Abstract sockets (``@name``) are
supported. The variables are removed from the environment so child processes (a
``password_command``) do not talk to systemd on our behalf.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _socket_address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Talks to the service manager. Every method is safe to call when not under systemd."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._last_status: str | None = None

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Notifier:
        """Read (and remove) NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID."""
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None) or None
        usec_text = env.pop("WATCHDOG_USEC", None)
        pid_text = env.pop("WATCHDOG_PID", None)
        watchdog: int | None = None
        if usec_text:
            try:
                watchdog = int(usec_text)
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not a number", usec_text)
            if pid_text and pid_text.strip() != str(os.getpid()):
                watchdog = None  # meant for another process
            if watchdog is not None and watchdog <= 0:
                watchdog = None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds within which WATCHDOG=1 must be sent, or None when there is no watchdog."""
        return self.watchdog_usec / 1_000_000 if self.watchdog_usec else None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=value`` lines. Returns False when it could not be sent."""
        if self.address is None:
            return False
        payload = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the main loop on a slow reader: a full queue drops the message.
                self._sock.setblocking(False)
            self._sock.sendto(payload, _socket_address(self.address))
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1"]
        if status:
            lines.append(f"STATUS={status}")
            self._last_status = status
        return self.notify(*lines)

    def reloading(self) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """STATUS=..., sent only when it changed."""
        text = text.replace("\n", " ")
        if text == self._last_status:
            return True
        self._last_status = text
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        if not self.watchdog_usec:
            return False
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
