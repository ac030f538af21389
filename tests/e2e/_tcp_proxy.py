"""A small TCP proxy for the e2e tests: a network cut on demand.

``TcpProxy(target_host, target_port)`` listens on a free loopback port and
forwards every connection it accepts to the target, byte for byte, both
ways.  ``cut()`` closes every open connection at once (both sides) and,
until ``restore()``, closes each new connection as soon as it is accepted,
without ever reaching the target: to a client it looks like a hub that went
away.  ``close()`` stops everything.

Plain threads, bounded everywhere: sockets are polled with short timeouts,
so ``cut`` and ``close`` take effect within ``POLL`` seconds and never wait
on a peer; threads are daemons and are joined with a deadline.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time

__all__ = ["TcpProxy"]

#: How often the threads look at the proxy's state (seconds).
POLL = 0.1
#: The longest wait to connect to the target.
CONNECT_TIMEOUT = 2.0
CHUNK = 64 * 1024


def _hard_close(sock: socket.socket, reset: bool) -> None:
    """Close now; with ``reset``, an RST rather than a FIN (no TIME_WAIT, no
    graceful end the peer could mistake for a complete response)."""
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Pair:
    """One proxied connection: the client's socket and the target's."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def close(self, reset: bool = False) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
            _hard_close(self.client, reset)
            _hard_close(self.upstream, reset)


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1",
                 reset: bool = False) -> None:
        self.target = (target_host, target_port)
        self.host = host
        #: ``cut`` (and refusals while cut) end connections with an RST.
        self.reset = reset
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._threads: list[threading.Thread] = []
        self._cut = threading.Event()
        self._closed = threading.Event()
        #: Counters, for the tests' own assertions and messages.
        self.accepted = 0
        self.refused = 0
        self.cuts = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}",
                                          daemon=True)
        self._acceptor.start()

    # -- the public surface -----------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pairs if not p.closed.is_set())

    def cut(self) -> int:
        """Close every open connection now and refuse new ones until
        `restore`; returns how many connections were closed."""
        self._cut.set()
        self.cuts += 1
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            pair.close(self.reset)
        return len(pairs)

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut.clear()

    def close(self, timeout: float = 2.0) -> None:
        """Stop listening, close every connection, join the threads (bounded)."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            pair.close(self.reset)
        deadline = time.monotonic() + timeout
        for thread in [self._acceptor, *self._threads]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the threads --------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # the listener was closed
            if self._cut.is_set() or self._closed.is_set():
                self.refused += 1
                _hard_close(client, self.reset)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
            except OSError:
                self.refused += 1
                _hard_close(client, self.reset)
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                if self._cut.is_set() or self._closed.is_set():
                    pair.close(self.reset)
                    self.refused += 1
                    continue
                self._pairs.add(pair)
                self.accepted += 1
            thread = threading.Thread(target=self._pump, args=(pair,), daemon=True,
                                      name=f"tcp-proxy-{self.port}-pump")
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _pump(self, pair: _Pair) -> None:
        peers = {pair.client: pair.upstream, pair.upstream: pair.client}
        try:
            for sock in peers:
                sock.setblocking(False)
            with selectors.DefaultSelector() as selector:
                for sock in peers:
                    selector.register(sock, selectors.EVENT_READ)
                while not pair.closed.is_set():
                    for key, _ in selector.select(POLL):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        try:
                            data = source.recv(CHUNK)
                        except (BlockingIOError, InterruptedError):
                            continue
                        if not data:
                            return  # one side ended: end the other too
                        self._send_all(peers[source], data, pair)
        except (OSError, ValueError):
            return  # closed under us (cut/close), or a peer reset
        finally:
            with self._lock:
                self._pairs.discard(pair)
            pair.close()

    @staticmethod
    def _send_all(sock: socket.socket, data: bytes, pair: _Pair) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 10.0
        while view and not pair.closed.is_set():
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                if time.monotonic() > deadline:
                    raise OSError("the peer reads nothing") from None
                time.sleep(0.005)
                continue
            view = view[sent:]
