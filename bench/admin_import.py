"""The admin's import beside the command, on the same file, into empty scopes of the
million-customer table (issue "Operator workspace": goal within 10%).

    .venv/bin/python bench/admin_import.py --rows 1000000            # prints the figures
    .venv/bin/python bench/admin_import.py --rows 1000000 --append docs/benchmarks.md

It writes a realistic file (bench/importfile.py: every field filled, metadata, offsets in
timestamps, 10% of rows with a parent), then imports it twice into scratch scopes of
bench/run.py's database (``crm_bench``): with ``manage.py import_customers`` (timed as a
process), and the admin's way: the upload kept in the database (``import_job_create``),
its dry run, then Import, each stage run by the worker's own function
(``import_job_run_next``, what ``run_import_jobs`` loops over). The figure is the import
stage's time against the command's; the upload and the dry run are given beside it. The
scratch scopes are deleted afterwards.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    CHECKOUT = Path(__file__).resolve().parent.parent
    if sys.path and Path(sys.path[0]).resolve() == CHECKOUT / "bench":
        sys.path[0] = str(CHECKOUT)
    elif str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))

from bench.common import DEFAULT_DATABASE_URL, PYTHON, ROOT, write_section
from bench.measure import WRITES_TENANT, remove_write_scopes
from bench.system import load_average, machine

SECTION = "## The admin's import beside the command"
COMMAND_ENVIRONMENT = "env_bench_import_command"
ADMIN_ENVIRONMENT = "env_bench_import_admin"
GOAL = 1.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--append", type=Path)
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.dev")
    os.environ["DATABASE_URL"] = arguments.database_url
    import django

    django.setup()
    from django.core.files.uploadedfile import UploadedFile

    from customers.import_jobs import import_job_create, import_job_run_next, import_job_start
    from customers.models import ImportJob, ImportStatus
    from customers.scope import Scope
    from customers.services import environment_ensure, staff_user_upsert

    remove_write_scopes(arguments.database_url)
    load_start = load_average()
    with tempfile.TemporaryDirectory() as directory:
        # One file a scope (a file names its scope; ids are global), the same shape.
        files = {}
        for seed, environment_id in ((22, COMMAND_ENVIRONMENT), (23, ADMIN_ENVIRONMENT)):
            files[environment_id] = Path(directory) / f"{environment_id}.csv"
            subprocess.run(
                [
                    PYTHON,
                    "bench/importfile.py",
                    str(files[environment_id]),
                    f"--rows={arguments.rows}",
                    f"--tenant={WRITES_TENANT}",
                    f"--environment={environment_id}",
                    f"--seed={seed}",
                ],
                cwd=ROOT,
                check=True,
            )
        for environment_id in (COMMAND_ENVIRONMENT, ADMIN_ENVIRONMENT):
            environment_ensure(tenant_id=WRITES_TENANT, environment_id=environment_id)
        try:
            started = time.perf_counter()
            subprocess.run(
                [
                    PYTHON,
                    "manage.py",
                    "import_customers",
                    str(files[COMMAND_ENVIRONMENT]),
                    f"--tenant={WRITES_TENANT}",
                    f"--environment={COMMAND_ENVIRONMENT}",
                ],
                cwd=ROOT,
                check=True,
                env=os.environ.copy(),
                stdout=subprocess.DEVNULL,
            )
            command_seconds = time.perf_counter() - started

            user = staff_user_upsert(
                username="bench_admin_import", password="x" * 20, tenant_ids=[WRITES_TENANT]
            )
            scope = Scope(tenant_id=WRITES_TENANT, environment_id=ADMIN_ENVIRONMENT)
            started = time.perf_counter()
            path = files[ADMIN_ENVIRONMENT]
            with path.open("rb") as file:
                uploaded = UploadedFile(
                    file=file, name=path.name, content_type="text/csv", size=path.stat().st_size
                )
                job = import_job_create(scope=scope, user=user, uploaded=uploaded)
            upload_seconds = time.perf_counter() - started
            stop = threading.Event()
            started = time.perf_counter()
            import_job_run_next(stop=stop)
            dry_run_seconds = time.perf_counter() - started
            job.refresh_from_db()
            if job.status != ImportStatus.CHECKED:
                raise SystemExit(f"the dry run ended {job.status}: {job.problems[:3]} {job.error}")
            import_job_start(job=job, user=user)
            started = time.perf_counter()
            import_job_run_next(stop=stop)
            admin_seconds = time.perf_counter() - started
            job = ImportJob.objects.get(pk=job.pk)
            if job.status != ImportStatus.IMPORTED:
                raise SystemExit(f"the import ended {job.status}: {job.error}")
        finally:
            remove_write_scopes(arguments.database_url)
    ratio = admin_seconds / command_seconds
    rows = arguments.rows
    section = "\n".join(
        [
            SECTION,
            "",
            f"Machine: {machine()}; load average {load_start} at the start, {load_average()}"
            " at the end. Command: `.venv/bin/python bench/admin_import.py"
            f" --rows {rows}`, on crm_bench (a million customers), each import into an empty"
            " scratch scope of the same table (two files of the same shape: a file names its"
            " scope).",
            "",
            "| | seconds | rows/s |",
            "|---|---:|---:|",
            f"| `manage.py import_customers` (the whole process) | {command_seconds:.1f} |"
            f" {rows / command_seconds:,.0f} |",
            f"| admin: upload kept in the database | {upload_seconds:.1f} | — |",
            f"| admin: dry run (nothing written) | {dry_run_seconds:.1f} |"
            f" {rows / dry_run_seconds:,.0f} |",
            f"| admin: Import, run by the worker | {admin_seconds:.1f} |"
            f" {rows / admin_seconds:,.0f} |",
            "",
            f"The admin's Import takes {ratio:.2f}x the command's time (goal: within"
            f" {GOAL:.2f}x: {'met' if ratio <= GOAL else 'not met'}). Its import is the"
            " command's importer reading the worker's local copy of the upload, with a heartbeat"
            " that writes its progress on a connection of its own.",
            "",
        ]
    )
    print(section)
    if arguments.append:
        write_section(arguments.append, section, heading=SECTION)


if __name__ == "__main__":
    main()
