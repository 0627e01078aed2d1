"""Test helper: a TCP relay on loopback whose traffic the test can hold, as a network that
stops carrying one host's packets (connections stay open, nothing gets through)."""

from __future__ import annotations

import contextlib
import socket
import threading


class HeldRelay:
    """Relays 127.0.0.1:`port` to `target` until `hold()`; bytes wait (the kernel's
    buffers, then the sender) until `release()`. `hold(only=b"...")` holds only the
    connections whose requests carry those bytes (one kind of HTTP request, say), the
    rest flowing. `close()` ends every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._flowing = threading.Event()
        self._flowing.set()
        self._only: bytes | None = None
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, only: bytes | None = None) -> None:
        self._only = only
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, ask in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, ask), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, ask: bool) -> None:
        try:
            while True:
                if self._only is None:
                    self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                if self._only is None or (ask and self._only in data):
                    self._flowing.wait()  # held: what was read waits here
                if self._closed.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
