"""Forms of the admin pages: the customer edit form and its metadata key/value rows.

Validation goes through ``customers.validation`` and the services' checks, so the admin
refuses exactly what the API refuses, with the API's messages shown under the form's own
labels (so without the API's field name in front: "Must be a valid email address").
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from customers.models import Customer, CustomerStatus
from customers.scope import Scope
from customers.selectors import live_external_id_taken
from customers.services import EXTERNAL_ID_TAKEN, parent_problem
from customers.validation import (
    MAX_METADATA_KEYS,
    CustomerValidationError,
    clean_customer_fields,
)

BLANK_METADATA_ROWS = 3


def under_label(message: str) -> str:
    """An API message ("must be ...", read after the field's name) as a message under the
    field's label: "Must be ..."; "is required" becomes "This field is required"."""
    if message.startswith("is "):
        return f"This field {message}"
    return capfirst(message)


class MetadataRowsWidget(forms.Widget):
    """Metadata as rows of key and value inputs, with a few blank rows to add more."""

    template_name = "customers/widgets/metadata_rows.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = list(value.items()) if isinstance(value, dict) else list(value or [])
        # Submitted blank rows are dropped (a refused save would otherwise show them again,
        # plus three more each time): the filled rows, then always the same blank ones.
        rows = [(key, item) for key, item in rows if key or item]
        rows += [("", "")] * BLANK_METADATA_ROWS
        context["widget"]["rows"] = rows[: MAX_METADATA_KEYS + BLANK_METADATA_ROWS]
        context["widget"]["max_keys"] = MAX_METADATA_KEYS
        return context

    def value_from_datadict(self, data, files, name):
        keys = data.getlist(f"{name}_key") if hasattr(data, "getlist") else []
        values = data.getlist(f"{name}_value") if hasattr(data, "getlist") else []
        return list(zip(keys, values, strict=False))

    def value_omitted_from_data(self, data, files, name):
        return f"{name}_key" not in data


class MetadataField(forms.Field):
    widget = MetadataRowsWidget

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        metadata: dict[str, str] = {}
        for key, item in value or []:
            if not key and not item:
                continue
            if not key:
                raise ValidationError("Keys must not be empty (a row has a value only)")
            if key in metadata:
                raise ValidationError(f"Key {key!r} is given twice")
            metadata[key] = item
        return metadata


def text_field(label: str | None = None, required: bool = False) -> forms.CharField:
    # No max_length here: the validation module's messages are the ones shown.
    return forms.CharField(required=required, strip=False, label=label)


class CustomerAdminForm(forms.ModelForm):
    external_id = text_field(required=True)
    name = text_field(required=True)
    email = forms.CharField(required=False, strip=True)
    address_line1 = text_field("Address line 1")
    address_line2 = text_field("Address line 2")
    address_city = text_field("City")
    address_state = text_field("State / region")
    address_postal_code = text_field("Postal code")
    address_country = text_field("Country (ISO code)")
    metadata = MetadataField(required=False)
    status = forms.ChoiceField(choices=CustomerStatus.choices, initial=CustomerStatus.PUBLISHED)

    class Meta:
        model = Customer
        fields = [
            "external_id",
            "name",
            "email",
            "status",
            "parent",
            "address_line1",
            "address_line2",
            "address_city",
            "address_state",
            "address_postal_code",
            "address_country",
            "metadata",
        ]

    # Set by the admin before validation: the scope the customer lives in (or will).
    scope: Scope | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.scope is not None and "parent" in self.fields:
            # Only the tenant's customers are choices: another tenant's id is "not one of
            # the available choices", as an id that does not exist is, and a refused form
            # never shows that customer's name as the selected parent.
            parent = self.fields["parent"]
            parent.queryset = parent.queryset.filter(tenant_id=self.scope.tenant_id)

    def api_fields(self) -> dict:
        """The form's values under the API's field names."""
        data = {
            name: self.cleaned_data[name]
            for name in self.Meta.fields
            if name != "parent" and name in self.cleaned_data
        }
        if data.get("email") == "":
            data["email"] = None
        if "parent" in self.cleaned_data:
            parent = self.cleaned_data["parent"]
            data["parent_customer_id"] = parent.pk if parent else None
        return data

    def clean(self):
        super().clean()
        if self.errors:
            return self.cleaned_data
        data = self.api_fields()
        try:
            cleaned = clean_customer_fields(data)
        except CustomerValidationError as error:
            for field, messages in error.errors.items():
                form_field = self.form_field(field)
                if form_field is None:  # not a field of this form: the API's whole sentence
                    self.add_error(None, [f"{field} {m}" for m in messages])
                else:
                    self.add_error(form_field, [under_label(m) for m in messages])
            return self.cleaned_data
        self.cleaned_data["address_country"] = cleaned.get("address_country", "")
        customer_id = self.instance.pk if self.instance._state.adding is False else None
        parent_id = data.get("parent_customer_id")
        changes_parent = parent_id != (self.instance.parent_id if customer_id else None)
        if parent_id and changes_parent and self.scope is not None:
            problem = parent_problem(scope=self.scope, customer_id=customer_id, parent_id=parent_id)
            if problem:
                self.add_error("parent", under_label(problem))
        if (
            self.scope is not None
            and cleaned.get("status") != CustomerStatus.ARCHIVED
            and live_external_id_taken(
                scope=self.scope, external_id=cleaned["external_id"], exclude_id=customer_id
            )
        ):
            # The API's message, under the field's label.
            self.add_error(
                "external_id", under_label(EXTERNAL_ID_TAKEN.format(external_id="this external id"))
            )
        return self.cleaned_data

    def form_field(self, api_field: str) -> str | None:
        if api_field == "parent_customer_id":
            return "parent"
        return api_field if api_field in self.fields else None

    def validate_unique(self):
        # The external id rule is checked in clean() with the API's wording.
        return
