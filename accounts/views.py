"""Customer pages of the accounts app: the dashboard, the API keys page and the team pages.

Views only translate requests: access rules are in ``accounts.selectors``, writes in
``accounts.services``.
"""

import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordResetView, redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from portal.errors import DomainError
from portal.ratelimit import client_ip, limit_hit

from .forms import ApiKeyCreateForm, InvitationForm, InvitationSignUpForm, RoleForm
from .models import Membership, User
from .selectors import (
    OrganisationAccess,
    api_key_get,
    api_key_list,
    invitation_list_pending,
    membership_list,
    organisation_access,
    organisation_list_for_staff,
    staff_may_view_organisations,
    team_list,
)
from .services import api_key_create, api_key_revoke
from .team import (
    INVITATION_MAX_AGE,
    InvalidInvitationError,
    InvitationNotFoundError,
    invitation_accept,
    invitation_cancel,
    invitation_from_token,
    membership_invite,
    membership_remove,
    membership_role_set,
)

PASSWORD_RESET_WINDOW_SECONDS = 3600

logger = logging.getLogger("accounts.views")

OrganisationView = Callable[..., HttpResponse]


def organisation_page(view: OrganisationView) -> OrganisationView:
    """Require login, then call ``view(request, access, ...)`` for the ``org_id`` of the URL.

    A user who may not see the organisation gets the same 404 as for one that does not exist.
    Every answer is ``Cache-Control: private, no-store``: an organisation's figures and keys are
    kept by no cache, shared or the browser's.
    """

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, org_id: str, *args, **kwargs) -> HttpResponse:
        access = organisation_access(user=request.user, org_id=org_id)
        if access is None:
            raise Http404("No organisation here.")
        response = view(request, access, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    return wrapped


def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Send a member of one organisation to its usage page; otherwise list the choices."""
    memberships = membership_list(user=request.user)
    staff_view = staff_may_view_organisations(user=request.user)
    if len(memberships) == 1 and not staff_view:
        return redirect("usage-page", org_id=memberships[0].organisation.org_id)
    query = request.GET.get("q", "")[:100] if staff_view else ""
    context = {
        "memberships": memberships,
        "staff_view": staff_view,
        "staff_organisations": organisation_list_for_staff(query=query) if staff_view else None,
        "query": query,
    }
    return render(request, "accounts/dashboard.html", context)


@require_http_methods(["GET", "POST"])
@organisation_page
def api_keys(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """List the keys; owners also create one here.

    The creating POST answers the page itself (201) with the new secret in it: the secret is
    never stored (not in the session, a cookie or a URL), so reloading or going back cannot show
    it again, and the response is marked ``no-store``.
    """
    form = ApiKeyCreateForm()
    status = 200
    new_key = None
    if request.method == "POST":
        if not access.can_manage_keys:
            raise PermissionDenied("Only an owner of this organisation can create API keys.")
        form = ApiKeyCreateForm(request.POST)
        status = 400
        if form.is_valid():
            try:
                created = api_key_create(
                    organisation=access.organisation,
                    name=form.cleaned_data["name"],
                    created_by=request.user,
                )
            except DomainError as error:
                form.add_error(error.field, error.message)
            else:
                new_key = {
                    "id": created.api_key.pk,
                    "name": created.api_key.name,
                    "plaintext": created.plaintext,
                }
                form = ApiKeyCreateForm()
                status = 201
    response = render(
        request,
        "accounts/api_keys.html",
        {
            "access": access,
            "organisation": access.organisation,
            "keys": api_key_list(organisation=access.organisation),
            "form": form,
            "new_key": new_key,
        },
        status=status,
    )
    add_never_cache_headers(response)
    return response


@require_http_methods(["GET", "POST"])
@organisation_page
def api_key_revoke_confirm(request: HttpRequest, access: OrganisationAccess, key_id: int) -> HttpResponse:
    """Ask an owner to confirm (GET), then revoke the key (POST) and go back to the list."""
    if not access.can_manage_keys:
        raise PermissionDenied("Only an owner of this organisation can revoke API keys.")
    api_key = api_key_get(organisation=access.organisation, key_id=key_id)
    if api_key is None:
        raise Http404("No such key.")
    if request.method == "POST":
        was_revoked = api_key.is_revoked
        api_key_revoke(api_key=api_key)
        if not was_revoked:
            messages.success(
                request, f"The key “{api_key.name}” is revoked: requests made with it are refused."
            )
        return redirect("api-keys", org_id=access.organisation.org_id)
    return render(
        request,
        "accounts/api_key_revoke.html",
        {"access": access, "organisation": access.organisation, "api_key": api_key},
    )


@require_http_methods(["GET", "POST"])
@organisation_page
def team(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """The organisation's people; owners also invite someone here (POST, then back to the list)."""
    form = InvitationForm()
    status = 200
    if request.method == "POST":
        if not access.can_manage_team:
            raise PermissionDenied("Only an owner of this organisation can invite people.")
        form = InvitationForm(request.POST)
        if form.is_valid():
            try:
                invitation = membership_invite(
                    organisation=access.organisation,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                    link_for=lambda token: request.build_absolute_uri(
                        reverse("invitation-accept", kwargs={"token": token})
                    ),
                )
            except DomainError as error:
                form.add_error(error.field, error.message)
            else:
                messages.success(
                    request,
                    f"Invitation sent to {invitation.email}: the link works once, "
                    f"for {INVITATION_MAX_AGE.days} days.",
                )
                return redirect("team", org_id=access.organisation.org_id)
        status = 400
    invitations = []
    if access.can_manage_team:
        invitations = invitation_list_pending(
            organisation=access.organisation, since=timezone.now() - INVITATION_MAX_AGE
        )
    for invitation in invitations:
        invitation.expires_at = invitation.created_at + INVITATION_MAX_AGE
    response = render(
        request,
        "accounts/team.html",
        {
            "access": access,
            "organisation": access.organisation,
            "memberships": team_list(organisation=access.organisation),
            "invitations": invitations,
            "form": form,
            "roles": Membership.Role.choices,
        },
        status=status,
    )
    add_never_cache_headers(response)
    return response


@require_POST
@organisation_page
def team_role(request: HttpRequest, access: OrganisationAccess, membership_id: int) -> HttpResponse:
    """An owner gives a member another role, then goes back to the list."""
    if not access.can_manage_team:
        raise PermissionDenied("Only an owner of this organisation can change roles.")
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner or member.")
        return redirect("team", org_id=access.organisation.org_id)
    try:
        membership = membership_role_set(
            organisation=access.organisation, membership_id=membership_id, role=form.cleaned_data["role"]
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"{membership.user.get_username()} is now {membership.get_role_display().lower()}."
        )
    return redirect("team", org_id=access.organisation.org_id)


@require_http_methods(["GET", "POST"])
@organisation_page
def team_remove(request: HttpRequest, access: OrganisationAccess, membership_id: int) -> HttpResponse:
    """Ask an owner to confirm (GET), then remove the member (POST)."""
    if not access.can_manage_team:
        raise PermissionDenied("Only an owner of this organisation can remove members.")
    membership = next((m for m in team_list(organisation=access.organisation) if m.pk == membership_id), None)
    if membership is None:
        raise Http404("No such member.")
    if request.method == "POST":
        try:
            membership_remove(organisation=access.organisation, membership_id=membership_id)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("team", org_id=access.organisation.org_id)
        if membership.user_id == request.user.pk:
            messages.success(request, f"You left {access.organisation.name}.")
            return redirect("dashboard")
        messages.success(request, f"{membership.user.get_username()} was removed from the organisation.")
        return redirect("team", org_id=access.organisation.org_id)
    return render(
        request,
        "accounts/team_remove.html",
        {"access": access, "organisation": access.organisation, "membership": membership},
    )


@require_POST
@organisation_page
def team_invitation_cancel(
    request: HttpRequest, access: OrganisationAccess, invitation_id: int
) -> HttpResponse:
    """An owner cancels a pending invitation (its link stops working), then goes back to the list."""
    if not access.can_manage_team:
        raise PermissionDenied("Only an owner of this organisation can cancel invitations.")
    try:
        invitation = invitation_cancel(organisation=access.organisation, invitation_id=invitation_id)
    except InvitationNotFoundError:
        raise Http404("No such invitation.") from None
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"The invitation of {invitation.email} was cancelled: its link no longer works."
        )
    return redirect("team", org_id=access.organisation.org_id)


@require_http_methods(["GET", "POST"])
def invitation_accept_page(request: HttpRequest, token: str) -> HttpResponse:
    """Join an organisation from an invitation link.

    A logged-in user with the invited address joins with one button; someone not logged in
    whose address has an account logs in first; a new person chooses a username and password.
    """
    try:
        invitation = invitation_from_token(token=token)
    except InvalidInvitationError as error:
        return _invitation_refused(request, error.message, status=410)
    user = request.user if request.user.is_authenticated else None
    if user is not None and (user.email or "").strip().lower() != invitation.email.lower():
        return _invitation_refused(
            request,
            f"This invitation was sent to another email address than the one of your account "
            f"({user.get_username()}). Log out, then open the link again to accept it with the "
            "invited address.",
            status=403,
        )
    has_account = user is None and User.objects.filter(email__iexact=invitation.email).exists()
    if has_account and request.method == "GET":
        return render(
            request, "accounts/invitation_accept.html", {"invitation": invitation, "has_account": True}
        )
    if has_account:
        return redirect_to_login(request.get_full_path())
    form = InvitationSignUpForm(request.POST or None) if user is None else None
    status = 200
    if request.method == "POST":
        if form is None or form.is_valid():
            try:
                membership = invitation_accept(
                    token=token,
                    user=user,
                    username=form.cleaned_data["username"] if form else "",
                    password=form.cleaned_data["password1"] if form else "",
                )
            except InvalidInvitationError as error:
                return _invitation_refused(request, error.message, status=410)
            except DomainError as error:
                form.add_error(error.field, error.message)
            else:
                if user is None:
                    login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome to {membership.organisation.name}.")
                return redirect("usage-page", org_id=membership.organisation.org_id)
        status = 400
    response = render(
        request,
        "accounts/invitation_accept.html",
        {"invitation": invitation, "form": form, "has_account": False},
        status=status,
    )
    add_never_cache_headers(response)
    return response


def _invitation_refused(request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
    return render(request, "accounts/invitation_refused.html", {"reason": reason}, status=status)


class LimitedPasswordResetView(PasswordResetView):
    """Django's password reset, sending at most ``PASSWORD_RESET_EMAIL_LIMIT`` mails an hour to
    one address and answering at most ``PASSWORD_RESET_IP_LIMIT`` requests an hour from one
    client address. Over a limit the answer is the same "check your mail" page, so the limit
    tells nothing about which addresses have accounts."""

    def form_valid(self, form):
        email = form.cleaned_data["email"].strip().lower()
        over_email = limit_hit(
            scope="password-reset-email",
            identity=email,
            limit=settings.PASSWORD_RESET_EMAIL_LIMIT,
            window_seconds=PASSWORD_RESET_WINDOW_SECONDS,
        )
        over_address = limit_hit(
            scope="password-reset-ip",
            identity=client_ip(self.request),
            limit=settings.PASSWORD_RESET_IP_LIMIT,
            window_seconds=PASSWORD_RESET_WINDOW_SECONDS,
        )
        if over_email or over_address:
            logger.warning(
                "Password-reset mail not sent: hourly limit reached (%s)",
                "per address asked for" if over_email else "per client address",
            )
            return redirect(self.get_success_url())
        return super().form_valid(form)
