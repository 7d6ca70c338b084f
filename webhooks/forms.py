from django import forms

from .models import SUBSCRIBABLE_EVENT_TYPES, EventType


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL", max_length=2000, widget=forms.URLInput(attrs={"placeholder": "https://"})
    )
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[(value, EventType(value).label) for value in SUBSCRIBABLE_EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        initial=SUBSCRIBABLE_EVENT_TYPES,
    )
    email_alerts = forms.BooleanField(
        label="Also email the owners the usage events of this endpoint", required=False
    )


class ThresholdForm(forms.Form):
    amount = forms.DecimalField(
        label="Monthly spend threshold", min_value=0.01, max_digits=14, decimal_places=2
    )
