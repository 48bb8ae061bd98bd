"""Template context for the environment switcher shown on admin and browsable API pages."""

from django.utils.functional import SimpleLazyObject

from customers.access import current_environment, environments_of_request, is_operator


def environment_switcher(request):
    if not is_operator(getattr(request, "user", None)):
        return {}

    def build():
        return {
            "current": current_environment(request),
            "choices": environments_of_request(request),
        }

    # Lazy: pages that never show the switcher (logins, JSON) run no query for it.
    return {"environment_switcher": SimpleLazyObject(build)}
