"""A TCP proxy on the loopback that can be cut and restored: a database outage without
touching the database server (bench/outage.py, customers/tests/test_db_outage.py).

``cut()`` closes every connection through it and its listening socket (a client then gets
"connection refused", as from a stopped server); ``restore()`` listens again on the same
port. With ``blackhole=True`` a cut keeps the port listening but accepts nothing: the
kernel completes each handshake and nothing ever answers (a server that hangs).
"""

import contextlib
import socket
import threading

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept() or recv()
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_port: int, *, target_host: str = LOOPBACK, port: int = 0):
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.open_sockets: set[socket.socket] = set()
        self.connections = 0  # accepted since the start

    def __enter__(self) -> "TcpProxy":
        self.restore()
        return self

    def __exit__(self, *exc_info) -> None:
        self.cut()

    def restore(self) -> None:
        """Listen (again) and forward every new connection to the target."""
        with self.lock:
            if self.listener is not None:
                close_socket(self.listener)
            listener = socket.create_server((LOOPBACK, self.port), backlog=128)  # SO_REUSEADDR
            self.listener = listener
        threading.Thread(target=self.accept_loop, args=(listener,), daemon=True).start()

    def cut(self, *, blackhole: bool = False) -> None:
        """Close every connection; then refuse new ones, or (blackhole) never answer them."""
        with self.lock:
            if self.listener is not None:
                close_socket(self.listener)
                self.listener = None
            for sock in list(self.open_sockets):
                close_socket(sock)
            self.open_sockets.clear()
            if blackhole:
                # Listening, never accepting: connections wait in the backlog unanswered.
                self.listener = socket.create_server((LOOPBACK, self.port), backlog=128)

    def accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                close_socket(client)
                continue
            with self.lock:
                if self.listener is not listener:  # cut meanwhile
                    close_socket(client)
                    close_socket(upstream)
                    return
                self.open_sockets.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(source, sink), daemon=True).start()

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                close_socket(sock)
                with self.lock:
                    self.open_sockets.discard(sock)
