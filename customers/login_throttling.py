"""The admin login page of a locked-out username (django-axes' `AXES_LOCKOUT_CALLABLE`).

django-axes refuses a username after `AXES_FAILURE_LIMIT` failed logins from one address
(crm/settings/base.py); its own answer would be a bare line of text. This one is the login
page the refused attempt rendered, with the lockout's message instead of "Please enter the
correct username and password", answered with 429.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.template.response import TemplateResponse

LOCKOUT_STATUS = 429


def lockout_message() -> str:
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    minutes = round(cool_off.total_seconds() / 60)
    return (
        f"Too many failed login attempts: after {settings.AXES_FAILURE_LIMIT} wrong passwords "
        f"this username is locked for {minutes} minutes from your address, even with the "
        "right password. Try again later, or ask an administrator to unlock it."
    )


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    form = None
    if isinstance(original_response, TemplateResponse) and original_response.context_data:
        form = original_response.context_data.get("form")
    if form is None or not form.is_bound:
        return HttpResponse(lockout_message(), status=LOCKOUT_STATUS, content_type="text/plain")
    # The form was validated already (its errors say the password was wrong): only its
    # message changes, so the page keeps the username typed and everything else.
    form.errors.clear()
    form.add_error(None, ValidationError(lockout_message(), code="locked_out"))
    # Django rendered the page before the middleware saw it: render it again.
    original_response.content = original_response.rendered_content
    original_response.status_code = LOCKOUT_STATUS
    return original_response
