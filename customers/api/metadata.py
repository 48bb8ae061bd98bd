"""What `OPTIONS` answers on `/v1/`: the view's name, description and media types.

DRF's SimpleMetadata also describes the POST and PUT forms, which for a detail URL means
fetching the object through ``get_object``: these views read through the selectors, not a
``queryset``, so that would fail. The OpenAPI document describes the bodies instead.
"""

from rest_framework.metadata import SimpleMetadata


class ApiMetadata(SimpleMetadata):
    def determine_actions(self, request, view):
        return {}

    def determine_metadata(self, request, view):
        metadata = super().determine_metadata(request, view)
        metadata.pop("actions", None)
        return metadata
