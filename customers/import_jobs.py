"""Imports from the admin: the uploaded file, its dry run and its import, run by a worker.

- ``import_job_create`` keeps an upload in the database (``ImportFileChunk`` rows of at most
  ``CHUNK_BYTES``), where a worker on any machine reads it, and asks for its dry run.
- ``import_job_start`` asks for the import of a job whose dry run found nothing wrong.
- ``run_import_jobs`` (the ``run_import_jobs`` command) claims due jobs with the project's
  one claim mechanism (``customers.jobs``: ``FOR UPDATE SKIP LOCKED`` and a lease), copies
  the file to a temporary file and runs ``customers.importer``'s dry run or import on it.
  While it works, a heartbeat thread, on its own database connection (the import's
  transaction is open on the worker's), renews the lease and writes the progress the page
  polls. The import and the job's ``imported`` status commit in one transaction, which the
  claim's token fences: a worker killed mid-import leaves nothing written (its transaction
  dies with its connection) and the job due again when the lease ends, for another try, up
  to ``MAX_ATTEMPTS``, then failed. SIGTERM rolls back the stage in hand and gives it back.

On SQLite the import holds the database's one write lock from start to end, so the
heartbeat cannot write meanwhile: the page shows the dry run's progress, and the import's
only when it ends (the lease, too, cannot be renewed, but no other writer can claim the job
while the lock is held).
"""

import codecs
import csv
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from customers import jobs
from customers.events import Actor
from customers.importer import (
    CustomerImportError,
    DryRunResult,
    ImportProgress,
    ImportRowError,
    dry_run_customers_csv,
    import_customers_csv,
    read_header,
)
from customers.models import (
    IMPORT_DUE_STATUSES,
    ImportFileChunk,
    ImportJob,
    ImportStatus,
)
from customers.scope import Scope, TenantScope
from customers.text import abbreviated

logger = logging.getLogger("customers.import_jobs")

CHUNK_BYTES = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024  # a million realistic rows are ~300 MB
DEFAULT_LEASE_SECONDS = 60
# A job whose worker stopped (killed, restarted) this many times is failed, not tried again.
MAX_ATTEMPTS = 3
# How often the heartbeat writes progress and renews the lease (module constant: tests).
HEARTBEAT_SECONDS = 1.0
# How much of an upload the form reads to tell a CSV from something else.
SNIFF_BYTES = 64 * 1024
MAX_MESSAGE_CHARACTERS = 500
TERMINAL_STATUSES = (ImportStatus.INVALID, ImportStatus.IMPORTED, ImportStatus.FAILED)


def max_upload_bytes() -> int:
    """``IMPORT_MAX_UPLOAD_BYTES``: the largest file the admin accepts."""
    return int(getattr(settings, "IMPORT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def lease_duration() -> timedelta:
    """``IMPORT_LEASE_SECONDS``: how long a claim holds without a heartbeat; a killed
    worker's job is tried again after this."""
    return timedelta(
        seconds=float(getattr(settings, "IMPORT_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))
    )


class ImportJobError(Exception):
    """The request cannot be done (the message says why)."""


# -- The upload ---------------------------------------------------------------------------------


def upload_problem(uploaded: UploadedFile) -> str | None:
    """Why ``uploaded`` is not a customer CSV, from its size and its beginning; None if it
    may be one (the dry run reads the rest)."""
    limit = max_upload_bytes()
    if uploaded.size > limit:
        return (
            f"The file is {size_text(uploaded.size)}; the largest accepted is {size_text(limit)}"
            " (IMPORT_MAX_UPLOAD_BYTES)."
        )
    if uploaded.size == 0:
        return "The file is empty; its first line must be the header."
    uploaded.seek(0)
    head = uploaded.read(SNIFF_BYTES)
    uploaded.seek(0)
    if b"\x00" in head:
        return "This is not a CSV file: it holds binary data (a NUL byte)."
    try:
        # A character cut at the end of what was read is not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        line = head[: error.start].count(b"\n") + 1
        return (
            f"The file is not UTF-8 text: line {line} (byte {error.start + 1}) is not valid"
            " UTF-8. Save it as CSV UTF-8."
        )
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if len(head) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line read may be cut
    try:
        read_header(
            (index + 1, cells)
            for index, cells in enumerate(csv.reader(lines, strict=True))
            if cells
        )
    except csv.Error as error:
        return f"This is not a CSV file: {error}."
    except ImportRowError as error:
        return f"This is not a customer CSV: {error}."
    return None


def size_text(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError  # unreachable


@transaction.atomic
def import_job_create(*, scope: Scope, user, uploaded: UploadedFile) -> ImportJob:
    """Keep the upload (in chunks) and ask for its dry run, in the current environment."""
    job = ImportJob.objects.create(
        tenant_id=scope.tenant_id,
        environment_id=scope.environment_id,
        created_by=user,
        created_by_name=user.get_username(),
        file_name=os.path.basename(uploaded.name or "upload.csv")[:255],
        file_size=uploaded.size,
        status=ImportStatus.CHECKING,
    )
    uploaded.seek(0)
    number = 0
    # read() rather than chunks(): an upload kept in memory gives its chunks() whole.
    while data := uploaded.read(CHUNK_BYTES):
        ImportFileChunk.objects.create(job=job, number=number, data=data)
        number += 1
    return job


def import_jobs_visible(tenant_scope: TenantScope):
    """The jobs an operator may see: their tenants' (every one for superusers)."""
    return tenant_scope.confine(ImportJob.objects.all())


def import_job_start(*, job: ImportJob, user) -> bool:
    """Ask for the import of a job whose dry run passed; False if it is not (or no longer)
    ready, e.g. a second click."""
    started = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.CHECKED).update(
        status=ImportStatus.QUEUED,
        imported_by_name=user.get_username(),
        attempt_count=0,
        next_attempt_at=timezone.now(),
        phase="",
        rows_done=0,
        stage_started_at=None,
        progress_at=None,
        error="",
    )
    return bool(started)


# -- What the page shows --------------------------------------------------------------------------


def import_job_progress(job: ImportJob) -> dict[str, Any]:
    """The job's state as the page polls it: status, rows done, rate, time left."""
    now = timezone.now()
    running = job.status in IMPORT_DUE_STATUSES and bool(job.claimed_until) and job.claim_token
    rate = None
    seconds_left = None
    if running and job.stage_started_at and job.progress_at and job.rows_done:
        elapsed = (job.progress_at - job.stage_started_at).total_seconds()
        if elapsed > 0:
            rate = job.rows_done / elapsed
    total = job.rows_total if job.status == ImportStatus.QUEUED else None
    if rate and total:
        seconds_left = max(0.0, (total - job.rows_done) / rate)
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": job.get_status_display(),
        "finished": job.status in TERMINAL_STATUSES or job.status == ImportStatus.CHECKED,
        "running": bool(running),
        "waiting": job.status in IMPORT_DUE_STATUSES and not running,
        "attempt": job.attempt_count,
        "phase": job.phase,
        "rows_done": job.rows_done,
        "rows_total": total,
        "rows_per_second": round(rate, 1) if rate else None,
        "seconds_left": round(seconds_left) if seconds_left is not None else None,
        "updated_seconds_ago": (now - job.progress_at).total_seconds() if job.progress_at else None,
    }


# -- The worker ---------------------------------------------------------------------------------


class JobStoppedError(Exception):
    """The worker is stopping (SIGTERM): the stage in hand is rolled back and given back."""


class LeaseLostError(Exception):
    """Another worker holds the job now (this one's lease ran out): change nothing."""


class Heartbeat:
    """A thread that renews the claim's lease and writes the job's progress, every
    ``HEARTBEAT_SECONDS``, on its own database connection."""

    def __init__(self, claim: jobs.Claim):
        self.claim = claim
        self.phase = "starting"
        self.done = 0
        self.lost = False
        self.paused = False  # SQLite, while the import holds the write lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """No beat after this returns (before the outcome is written)."""
        self._stop.set()
        self._thread.join()

    def progress(self, progress: ImportProgress) -> None:
        self.phase = progress.phase
        self.done = progress.done

    def _run(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                if not self.paused:
                    self.beat()
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        until = timezone.now() + lease_duration()
        try:
            held = self.claim.held().update(
                phase=self.phase,
                rows_done=self.done,
                progress_at=timezone.now(),
                next_attempt_at=until,
                claimed_until=until,
            )
            if not held:
                # Taken over only if the job is there under another token (not just
                # invisible to this connection, or already done by this worker).
                self.lost = (
                    ImportJob.objects.filter(pk__in=self.claim.ids, status__in=IMPORT_DUE_STATUSES)
                    .exclude(claim_token=self.claim.token)
                    .exists()
                )
            else:
                self.claim.until = until
        except DatabaseError:
            logger.warning("import job %s: progress not written this time", self.claim.ids)
            connection.close()


def run_import_jobs(
    *, once: bool, stop: threading.Event | None = None, poll_seconds: float = 1.0
) -> int:
    """Run due dry runs and imports until ``stop`` is set (``once``: until none is due)."""
    stop = stop or threading.Event()
    done = 0

    def step(stop: threading.Event) -> int:
        nonlocal done
        claimed = import_job_run_next(stop=stop)
        done += claimed
        return claimed

    jobs.run_worker(step, name="run_import_jobs", once=once, stop=stop, poll_seconds=poll_seconds)
    return done


def due_import_jobs():
    return ImportJob.objects.filter(
        status__in=IMPORT_DUE_STATUSES, next_attempt_at__lte=timezone.now()
    ).order_by("next_attempt_at", "id")


def import_job_run_next(*, stop: threading.Event) -> int:
    """Claim one due job and run its stage; how many were claimed (0 or 1)."""
    claim = jobs.claim(
        due_import_jobs(),
        limit=1,
        lease=lease_duration(),
        attempt_count=F("attempt_count") + 1,
        stage_started_at=timezone.now(),
        progress_at=None,
        rows_done=0,
        phase="starting",
    )
    if not claim.ids:
        return 0
    job = ImportJob.objects.get(pk=claim.ids[0])
    if job.attempt_count > MAX_ATTEMPTS:
        job_failed(
            claim,
            f"the worker stopped (killed or restarted) during each of {MAX_ATTEMPTS} attempts;"
            " nothing was written",
        )
        return 1
    try:
        with local_copy(job) as path, Heartbeat(claim) as heartbeat:
            if job.status == ImportStatus.CHECKING:
                dry_run(job=job, path=path, claim=claim, heartbeat=heartbeat, stop=stop)
            else:
                run_import(job=job, path=path, claim=claim, heartbeat=heartbeat, stop=stop)
    except JobStoppedError:
        claim.release(attempt_count=F("attempt_count") - 1, phase="")
    except LeaseLostError:
        logger.warning("import job %s: taken over by another worker", job.pk)
    except CustomerImportError as error:
        job_failed(claim, str(error))
    except (OperationalError, InterfaceError):
        raise  # the database is away: the job comes due again when its lease ends
    except Exception as error:
        logger.exception("import job %s failed", job.pk)
        job_failed(claim, f"internal error: {type(error).__name__}")
    return 1


@contextmanager
def local_copy(job: ImportJob) -> Iterator[str]:
    """The job's file as a temporary file of this machine (the importer reads it twice on
    a refusal), a chunk at a time."""
    handle, path = tempfile.mkstemp(prefix=f"import-{job.pk}-", suffix=".csv")
    try:
        with os.fdopen(handle, "wb") as local:
            chunks = ImportFileChunk.objects.filter(job_id=job.pk).order_by("number")
            for number in chunks.values_list("number", flat=True):
                data = ImportFileChunk.objects.filter(job_id=job.pk, number=number).values_list(
                    "data", flat=True
                )[0]
                local.write(data)
        yield path
    finally:
        os.unlink(path)


def checked_progress(heartbeat: Heartbeat, stop: threading.Event):
    def on_progress(progress: ImportProgress) -> None:
        heartbeat.progress(progress)
        if stop.is_set():
            raise JobStoppedError
        if heartbeat.lost:
            raise LeaseLostError

    return on_progress


def dry_run(
    *, job: ImportJob, path: str, claim: jobs.Claim, heartbeat: Heartbeat, stop: threading.Event
) -> None:
    result = dry_run_customers_csv(
        path=path,
        tenant_id=job.tenant_id,
        environment_id=job.environment_id,
        on_progress=checked_progress(heartbeat, stop),
    )
    heartbeat.stop()  # no beat after the outcome
    status = ImportStatus.CHECKED if result.importable else ImportStatus.INVALID
    with transaction.atomic():
        if not finished(
            claim,
            status=status,
            rows_total=result.rows,
            rows_done=result.rows,
            problem_count=result.problem_count,
            problems=problems_as_dicts(result),
            preview=result.preview,
        ):
            raise LeaseLostError
        if status == ImportStatus.INVALID:  # the file can never be imported: drop it
            ImportFileChunk.objects.filter(job_id=job.pk).delete()


def problems_as_dicts(result: DryRunResult) -> list[dict[str, Any]]:
    """The problems as stored (jsonb refuses NUL even escaped, and a message may quote a
    cell that holds one; a cell may be long)."""
    return [
        {
            "line": problem.line,
            "field": storable(problem.field) if problem.field else None,
            "message": storable(problem.message),
        }
        for problem in result.problems
    ]


def storable(text: str) -> str:
    return abbreviated(text.replace("\x00", "\\x00"), limit=MAX_MESSAGE_CHARACTERS)


def run_import(
    *, job: ImportJob, path: str, claim: jobs.Claim, heartbeat: Heartbeat, stop: threading.Event
) -> None:
    # SQLite: the import's transaction holds the one write lock; the heartbeat would wait.
    heartbeat.paused = connection.vendor == "sqlite"
    started = time.perf_counter()
    with transaction.atomic():
        result = import_customers_csv(
            path=path,
            tenant_id=job.tenant_id,
            environment_id=job.environment_id,
            on_progress=checked_progress(heartbeat, stop),
            actor=Actor.user(job.imported_by_name or job.created_by_name),
        )
        heartbeat.stop()
        # In the import's transaction: imported and marked so, or neither.
        if not finished(
            claim,
            status=ImportStatus.IMPORTED,
            imported_count=result.imported,
            rows_done=result.imported,
            import_seconds=time.perf_counter() - started,
        ):
            raise LeaseLostError
    ImportFileChunk.objects.filter(job_id=job.pk).delete()  # the file is no longer needed


def finished(claim: jobs.Claim, **changes: Any) -> int:
    return claim.held().update(
        claimed_until=None, claim_token="", phase="", finished_at=timezone.now(), **changes
    )


def job_failed(claim: jobs.Claim, error: str) -> None:
    with transaction.atomic():
        if finished(claim, status=ImportStatus.FAILED, error=error):
            ImportFileChunk.objects.filter(job_id__in=claim.ids).delete()


# -- Files never imported -------------------------------------------------------------------


def import_files_purge(*, older_than_days: int) -> int:
    """Discard the files of dry-run-checked uploads nobody imported within
    ``older_than_days`` (the job stays, failed, saying so); returns how many. Files of jobs
    a worker still has to run are kept; the others were discarded when they finished."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    stale = list(
        ImportJob.objects.filter(status=ImportStatus.CHECKED, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for job_id in stale:
        with transaction.atomic():
            if ImportJob.objects.filter(pk=job_id, status=ImportStatus.CHECKED).update(
                status=ImportStatus.FAILED,
                error=f"not imported within {older_than_days} days of its upload;"
                " the file was discarded (upload it again to import it)",
                finished_at=timezone.now(),
            ):
                ImportFileChunk.objects.filter(job_id=job_id).delete()
    return len(stale)
