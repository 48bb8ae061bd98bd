"""This machine: its processes' CPU time and memory (from /proc), its hardware, the versions."""

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psycopg

# The fields of /proc/<pid>/stat after the command name (0-based): user and system time, and
# those of waited-for children.
UTIME, STIME, CUTIME, CSTIME = 11, 12, 13, 14


def memory_kib(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a process in KiB (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def process_name_and_stat(pid: int | str) -> tuple[str, list[str]]:
    """(command name, the /proc/<pid>/stat fields after the name)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes, from /proc/<pid>/stat."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            _, fields = process_name_and_stat(pid)
            ticks += int(fields[UTIME]) + int(fields[STIME])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """CPU time used by the local PostgreSQL server so far: its live processes, plus what
    the postmaster has collected from backends that have exited (cutime, cstime). None when
    no server process can be read (PostgreSQL on another machine)."""
    ticks, found = 0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            name, fields = process_name_and_stat(entry.name)
            if name != "postgres":
                continue
            found = True
            ticks += int(fields[UTIME]) + int(fields[STIME])
            parent_name, _ = process_name_and_stat(fields[1])
            if parent_name != "postgres":  # the postmaster: add its exited backends
                ticks += int(fields[CUTIME]) + int(fields[CSTIME])
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def postgres_backends_of(database: str) -> list[int]:
    """The live PostgreSQL backends connected to one database (their title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                pids.append(int(entry.name))
    return pids


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy since boot, all cores (from /proc/stat):
    everything but idle and I/O wait."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB memory"
    return f"{model}, {os.cpu_count()} cores{memory} ({platform.system()} {platform.release()})"


def versions(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as connection:
        server = connection.execute("SHOW server_version").fetchone()[0]
    return (
        f"Python {platform.python_version()}, Django {importlib.metadata.version('django')},"
        f" Django REST framework {importlib.metadata.version('djangorestframework')},"
        f" PostgreSQL {server}, psycopg {psycopg.__version__},"
        f" gunicorn {importlib.metadata.version('gunicorn')}"
    )


def checkout_description(path: Path) -> str:
    """`<short commit> (<subject, shortened>)` of a git checkout, and whether its tracked
    files differ from that commit."""

    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h") or "unknown commit"
    subject = git("log", "-1", "--format=%s")
    if len(subject) > 70:
        subject = subject[:69].rstrip() + "…"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"`{commit}` ({subject})" + (", with uncommitted changes" if dirty else "")
