"""The webhooks page: owners manage endpoints and spend thresholds, members read and redeliver.

Views translate requests only: writes are in ``webhooks.services``, reads in ``webhooks.selectors``.
A new or rotated secret waits in the session for exactly one page view, never in a URL.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import OrganisationAccess
from accounts.views import organisation_page
from portal.errors import DomainError

from . import services
from .forms import EndpointForm, ThresholdForm
from .selectors import delivery_get, spend_threshold_list, webhook_endpoint_get, webhook_overview

_SECRET_SESSION_PREFIX = "portal.webhook-secret."  # noqa: S105 (a session key name)


def _require_owner(access: OrganisationAccess) -> None:
    if not access.is_owner:
        raise PermissionDenied("Only an owner of this organisation can change its webhooks.")


def _back(access: OrganisationAccess) -> HttpResponse:
    return redirect("webhooks", org_id=access.organisation.org_id)


def _remember_secret(request: HttpRequest, access: OrganisationAccess, created) -> None:
    request.session[_SECRET_SESSION_PREFIX + access.organisation.org_id] = {
        "endpoint_id": created.endpoint.pk,
        "url": created.endpoint.url,
        "secret": created.secret,
    }


def _page(request, access, *, form=None, threshold_form=None, status=200) -> HttpResponse:
    new_secret = None
    if request.method == "GET":
        new_secret = request.session.pop(_SECRET_SESSION_PREFIX + access.organisation.org_id, None)
    response = render(
        request,
        "webhooks/webhooks_page.html",
        {
            "access": access,
            "organisation": access.organisation,
            "overview": webhook_overview(organisation=access.organisation),
            "thresholds": spend_threshold_list(organisation=access.organisation),
            "form": form or EndpointForm(),
            "threshold_form": threshold_form or ThresholdForm(),
            "new_secret": new_secret,
        },
        status=status,
    )
    add_never_cache_headers(response)
    return response


@require_http_methods(["GET", "POST"])
@organisation_page
def webhooks_page(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """List endpoints and recent deliveries; an owner's POST adds an endpoint."""
    if request.method == "GET":
        return _page(request, access)
    _require_owner(access)
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            created = services.webhook_endpoint_create(organisation=access.organisation, **form.cleaned_data)
        except DomainError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            _remember_secret(request, access, created)
            return _back(access)
    return _page(request, access, form=form, status=400)


@require_http_methods(["GET", "POST"])
@organisation_page
def endpoint_edit(request: HttpRequest, access: OrganisationAccess, endpoint_id: int) -> HttpResponse:
    _require_owner(access)
    endpoint = webhook_endpoint_get(organisation=access.organisation, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such endpoint.")
    status = 200
    if request.method == "POST":
        form = EndpointForm(request.POST)
        if form.is_valid():
            try:
                services.webhook_endpoint_update(endpoint=endpoint, **form.cleaned_data)
            except DomainError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                messages.success(request, "The endpoint is saved.")
                return _back(access)
        status = 400
    else:
        form = EndpointForm(
            initial={
                "url": endpoint.url,
                "description": endpoint.description,
                "event_types": endpoint.event_types,
                "email_alerts": endpoint.email_alerts,
            }
        )
    return render(
        request,
        "webhooks/endpoint_edit.html",
        {"access": access, "organisation": access.organisation, "endpoint": endpoint, "form": form},
        status=status,
    )


@require_POST
@organisation_page
def endpoint_action(
    request: HttpRequest, access: OrganisationAccess, endpoint_id: int, action: str
) -> HttpResponse:
    """An owner's button on one endpoint: disable, enable, rotate, test, delete."""
    _require_owner(access)
    endpoint = webhook_endpoint_get(organisation=access.organisation, endpoint_id=endpoint_id)
    if endpoint is None or action not in {"disable", "enable", "rotate", "test", "delete"}:
        raise Http404("No such endpoint.")
    if action == "disable":
        services.webhook_endpoint_set_active(
            endpoint=endpoint, is_active=False, reason="Disabled by an owner."
        )
        messages.success(request, f"{endpoint.url} is disabled.")
    elif action == "enable":
        services.webhook_endpoint_set_active(endpoint=endpoint, is_active=True)
        messages.success(request, f"{endpoint.url} is enabled.")
    elif action == "rotate":
        _remember_secret(request, access, services.webhook_endpoint_rotate_secret(endpoint=endpoint))
    elif action == "test":
        try:
            services.webhook_test_send(endpoint=endpoint)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"A test event is on its way to {endpoint.url}.")
    else:
        services.webhook_endpoint_delete(endpoint=endpoint)
        messages.success(request, f"{endpoint.url} is deleted.")
    return _back(access)


@require_POST
@organisation_page
def threshold_add(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    _require_owner(access)
    form = ThresholdForm(request.POST)
    if form.is_valid():
        try:
            services.spend_threshold_add(organisation=access.organisation, amount=form.cleaned_data["amount"])
        except DomainError as error:
            form.add_error("amount", error.message)
        else:
            return _back(access)
    return _page(request, access, threshold_form=form, status=400)


@require_POST
@organisation_page
def threshold_remove(request: HttpRequest, access: OrganisationAccess, threshold_id: int) -> HttpResponse:
    _require_owner(access)
    if not services.spend_threshold_remove(organisation=access.organisation, threshold_id=threshold_id):
        raise Http404("No such threshold.")
    return _back(access)


@require_POST
@organisation_page
def delivery_redeliver_view(
    request: HttpRequest, access: OrganisationAccess, delivery_id: int
) -> HttpResponse:
    """Owners and members may send a delivery again (staff only look)."""
    if not access.is_member:
        raise PermissionDenied("Only members of this organisation can redeliver.")
    delivery = delivery_get(organisation=access.organisation, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    try:
        services.delivery_redeliver(delivery=delivery)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The {delivery.event.type} event is being sent again.")
    return _back(access)
