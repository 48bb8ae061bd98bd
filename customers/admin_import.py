"""Admin pages for importing customers from a CSV: upload, dry run, import, progress.

- *Upload* (the model's add page): a CSV into the operator's current environment, checked
  by ``import_jobs.upload_problem`` (size, UTF-8, a customer CSV's header) as form errors;
  then the job's page.
- *The job's page* (its change page): while a worker runs the dry run or the import, the
  progress (rows, rate, time left), polled by ``static/customers/import_progress.js`` from
  the job's ``progress/`` JSON; then the dry run's findings (rows, the first 50 problems
  with line and field, a preview of the first rows as stored) and *Import* (a POST), or the
  import's outcome (who, when, rows, or the error).
- *The list*: the operator's tenants' imports, newest first (who, when, file, rows, result).

Operators see their tenants' imports only (another tenant's job is a 404); they import
where they may add customers (``customers.add_customer``: an import adds customers). The
work itself is ``customers.import_jobs``'s, run by ``run_import_jobs`` workers.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from customers.access import current_environment, is_operator, tenant_scope_for_user
from customers.import_jobs import (
    import_job_create,
    import_job_progress,
    import_job_start,
    import_jobs_visible,
    max_upload_bytes,
    size_text,
    upload_problem,
)
from customers.importer import AT_IMPORT
from customers.models import IMPORT_DUE_STATUSES, ImportJob, ImportStatus
from customers.shape import FIELD_NAMES, SCOPE_FIELDS

# The preview's columns: the API's fields but the scope (it is the page's environment).
PREVIEW_COLUMNS = [field for field in FIELD_NAMES if field not in SCOPE_FIELDS]


def may_import(user) -> bool:
    return is_operator(user) and user.has_perm("customers.add_customer")


def may_view_imports(user) -> bool:
    return is_operator(user) and user.has_perm("customers.view_customer")


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 CSV whose header names the API's fields (external_id and name are"
        " required), as an export writes it.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        problem = upload_problem(uploaded)
        if problem:
            raise forms.ValidationError(problem)
        return uploaded


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_texts(job: ImportJob) -> dict:
    """The job's progress for the page (and its poll): the figures and their texts."""
    progress = import_job_progress(job)
    stage = "import" if job.status == ImportStatus.QUEUED else "dry run"
    if progress["waiting"]:
        state = (
            f"The {stage} is waiting for a worker (manage.py run_import_jobs)."
            if progress["attempt"] == 0
            else f"The {stage} is waiting for a worker to try again: the one running it"
            f" stopped (attempt {progress['attempt']})."
        )
    elif progress["running"]:
        state = f"The {stage} is running"
        if progress["phase"] and progress["phase"] != "reading":
            state += f" ({progress['phase']})"
        if progress["attempt"] > 1:
            state += f", attempt {progress['attempt']}"
        state += "."
    else:
        state = job.get_status_display()
    done = progress["rows_done"]
    total = progress["rows_total"]
    rows = f"{done:,} of {total:,} rows" if total is not None else f"{done:,} rows read"
    rate = progress["rows_per_second"]
    return {
        **progress,
        "state_text": state,
        "rows_text": rows,
        "rate_text": f"{rate:,.0f} rows/s" if rate else "—",
        "time_left_text": duration_text(progress["seconds_left"]),
        "percent": round(100 * done / total) if total else None,
    }


def number_text(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def preview_cell(value) -> str:
    if value is AT_IMPORT:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "created",
        "file",
        "environment_id",
        "created_by_name",
        "outcome",
        "rows_total",
        "imported_count",
    )
    list_display_links = ("file",)
    ordering = ("-created_at", "-id")
    list_per_page = 50
    show_full_result_count = False

    # -- permissions and scope --

    def get_queryset(self, request):
        return import_jobs_visible(tenant_scope_for_user(request.user))

    def has_module_permission(self, request):
        return may_view_imports(request.user)

    def has_view_permission(self, request, obj=None):
        return may_view_imports(request.user)

    def has_add_permission(self, request):
        return may_import(request.user)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # -- the list's columns --

    @admin.display(description="uploaded", ordering="created_at")
    def created(self, job):
        return timezone.localtime(job.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="file", ordering="file_name")
    def file(self, job):
        return job.file_name

    @admin.display(description="result")
    def outcome(self, job):
        if job.status == ImportStatus.FAILED:
            return format_html('<span class="import-failed">Failed: {}</span>', job.error[:120])
        if job.status == ImportStatus.INVALID:
            return f"{job.problem_count:,} problems found"
        return job.get_status_display()

    # -- the pages --

    def get_urls(self):
        return [
            path(
                "<str:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="customers_importjob_progress",
            ),
            path(
                "<str:object_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="customers_importjob_import",
            ),
            *super().get_urls(),
        ]

    def job_or_404(self, request, object_id) -> ImportJob:
        return get_object_or_404(self.get_queryset(request), pk=unquote(object_id))

    def job_url(self, job: ImportJob) -> str:
        return reverse("admin:customers_importjob_change", args=[job.pk])

    def add_view(self, request, form_url="", extra_context=None):
        """Upload a CSV into the current environment: its dry run is asked for at once."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        environment = current_environment(request)
        form = ImportUploadForm()
        if request.method == "POST":
            form = ImportUploadForm(request.POST, request.FILES)
            if environment is None:
                form.add_error(None, "You have no environment to import into.")
            elif form.is_valid():
                job = import_job_create(
                    scope=environment.scope, user=request.user, uploaded=form.cleaned_data["file"]
                )
                messages.success(
                    request,
                    f"“{job.file_name}” was uploaded; its dry run checks every row and writes"
                    " nothing.",
                )
                return HttpResponseRedirect(self.job_url(job))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import customers from a CSV file",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "environment": environment,
            "max_upload": size_text(max_upload_bytes()),
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/customers/importjob/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The job: progress while a worker runs it, then the dry run's findings (and
        *Import*) or the import's outcome."""
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        job = self.job_or_404(request, object_id)
        preview_rows = [
            [row.get("line"), *(preview_cell(row.get(column)) for column in PREVIEW_COLUMNS)]
            for row in job.preview
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import of “{job.file_name}”",
            "subtitle": None,
            "opts": self.opts,
            "job": job,
            "file_size": size_text(job.file_size),
            "rows_total": number_text(job.rows_total),
            "imported_count": number_text(job.imported_count),
            "problem_count": number_text(job.problem_count),
            "progress": progress_texts(job),
            "in_progress": job.status in IMPORT_DUE_STATUSES,
            "can_import": job.status == ImportStatus.CHECKED and self.has_add_permission(request),
            "more_problems": max(0, job.problem_count - len(job.problems)),
            "preview_columns": PREVIEW_COLUMNS,
            "preview_rows": preview_rows,
            "customers_url": reverse("admin:customers_customer_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/customers/importjob/job.html", context)

    def progress_view(self, request, object_id):
        """The job's progress as JSON, for the page's poll."""
        if not self.has_view_permission(request):
            return JsonResponse({"error": "not allowed"}, status=403)
        job = self.job_or_404(request, object_id)
        return JsonResponse(progress_texts(job))

    def import_view(self, request, object_id):
        """POST: import the file whose dry run passed (a worker runs it)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        job = self.job_or_404(request, object_id)
        if import_job_start(job=job, user=request.user):
            messages.success(
                request,
                f"The import of {job.rows_total:,} rows is queued; it writes every row or none.",
            )
        else:
            messages.error(request, "This file cannot be imported now (see its status).")
        return HttpResponseRedirect(self.job_url(job))
