"""Forms of the customer pages: they translate input; the services do the work."""

from django import forms

from .models import ApiKey


class ApiKeyCreateForm(forms.Form):
    """The name of a new key; uniqueness within the organisation is checked by the service."""

    name = forms.CharField(
        label="Key name",
        max_length=ApiKey._meta.get_field("name").max_length,
        strip=True,
        help_text="For example the app or environment that will use it, such as “production”.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "placeholder": "production", "spellcheck": "false"}
        ),
    )
