"""gunicorn as production starts it, HTTP clients over keep-alive connections, the admin login."""

import contextlib
import hashlib
import http.client
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench.common import GUNICORN, LOOPBACK, ROOT, BenchError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn with the checkout's gunicorn.conf.py, in its own process group, always stopped.

    ``cwd`` is the checkout (gunicorn puts it first on the workers' sys.path, so its code is
    the code served); ``app`` the WSGI module; ``ready_path`` answers 200 once it serves.
    """

    def __init__(
        self,
        *,
        label: str,
        environment: dict[str, str],
        log_path: Path,
        cwd: Path = ROOT,
        app: str = "crm.wsgi",
        ready_path: str = "/admin/login/",
    ):
        self.label = label
        self.port = free_port()
        self.environment = {**environment, "GUNICORN_BIND": f"{LOOPBACK}:{self.port}"}
        self.log_path = log_path
        self.cwd = cwd
        self.ready_path = ready_path
        self.process: subprocess.Popen | None = None
        self.command = [GUNICORN, app, "-c", "gunicorn.conf.py"]

    def start(self, *, timeout: float = 60.0) -> None:
        print(
            f"starting {self.label}: gunicorn on {LOOPBACK}:{self.port} from {self.cwd}"
            f" (log: {self.log_path})"
        )
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the workers
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.label}: gunicorn exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
                connection.request("GET", self.ready_path)
                if connection.getresponse().status == 200:
                    connection.close()
                    if len(self.worker_pids()) >= self.expected_workers():
                        return
            time.sleep(0.2)
        raise BenchError(
            f"{self.label}: gunicorn did not answer within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def expected_workers(self) -> int:
        return int(self.environment.get("GUNICORN_WORKERS", (os.cpu_count() or 1) * 2 + 1))

    def threads(self) -> str:
        return self.environment.get("GUNICORN_THREADS", "4")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            return [int(pid) for pid in children.read_text().split()]
        return []

    def pids(self) -> list[int]:
        """The arbiter and its workers."""
        return [self.process.pid, *self.worker_pids()] if self.process is not None else []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the group we created, by its id
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Client:
    """One keep-alive HTTP/1.1 connection to the server; reconnects when the server closed it."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port = port
        self.headers = headers
        self.connection: http.client.HTTPConnection | None = None

    def connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=600)
            self.connection.connect()
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def get(self, path: str) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending the request to the body's last byte)."""
        return self.send("GET", path)

    def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """Like ``get``, any method; a body is sent as JSON."""
        headers = self.headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        for attempt in range(2):
            connection = self.connect()  # outside the timing
            try:
                started = time.perf_counter()
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                body = response.read()
                seconds = time.perf_counter() - started
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.close()  # the server dropped an idle keep-alive connection
                if attempt:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, body, seconds
        raise AssertionError("unreachable")


def admin_login(port: int, *, username: str, password: str) -> str:
    """Log in through the admin's form (CSRF token, cookie jar); the Cookie header to send."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )
    base = f"http://{LOOPBACK}:{port}"
    with opener.open(f"{base}/admin/login/", timeout=30) as response:
        page = response.read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not match:
        raise BenchError("the admin login page has no CSRF token")
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": match.group(1),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=form)
    with opener.open(request, timeout=30) as response:
        response.read()
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies:
        raise BenchError("the admin login failed: no session cookie")
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def framework_floor_server(
    *, environment: dict[str, str], bodies: dict[str, bytes], api_key: str, log_directory: Path
) -> Server:
    """The framework floor (bench/framework), to answer ``bodies`` (by query string) to
    requests carrying ``api_key``; the same gunicorn settings as the product's server."""
    bodies_path = log_directory / "framework_bodies.json"
    bodies_path.write_text(json.dumps({query: body.decode() for query, body in bodies.items()}))
    return Server(
        label="the framework floor",
        environment={
            **environment,
            "DJANGO_SETTINGS_MODULE": "bench.framework.settings",
            "BENCH_FRAMEWORK_BODIES": str(bodies_path),
            "BENCH_FRAMEWORK_KEY_HASH": hashlib.sha256(api_key.encode()).hexdigest(),
        },
        log_path=log_directory / "framework.log",
        app="bench.framework.wsgi",
        ready_path="/ready",
    )
