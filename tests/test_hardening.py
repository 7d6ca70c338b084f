"""Hardening (issue 12): hostile input never becomes a 500, CSV cells never run as formulas,
brute force is slowed, staff see customer pages only through a role, the admin keeps secrets,
and every response carries the security headers.

(Long because it lists the hostile inputs one by one, each with the answer it must get.)"""

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_add

USAGE_URL = reverse("usage-page", kwargs={"org_id": "org_acme"})
CSV_URL = reverse("usage-csv", kwargs={"org_id": "org_acme"})


@pytest.fixture
def as_superuser_owner(client, superuser, acme):
    """A superuser who is also Acme's owner: every page below is open to them."""
    membership_add(organisation=acme, user=superuser, role=Membership.Role.OWNER)
    client.force_login(superuser)
    client.raise_request_exception = False
    return client


# 1. Hostile input is a 400 or a 404, never a 500.

NUL_URLS = [
    "/orgs/org_acme%00/usage/",
    "/orgs/org_acme/usage/?start=%00",
    "/orgs/org_acme/usage.csv?end=2025-01%00",
    "/orgs/org_acme/keys/?x=%00",
    "/dashboard/?q=%00",
    "/dashboard/?q=a+%00+b",
    "/admin/usage/job/?org_id=%00",
    "/admin/usage/job/?language=%00",
    "/admin/usage/job/?q=%00",
    "/admin/usage/job/?month=%00",
    "/admin/usage/monthlyusage/?org_id=%00",
    "/admin/accounts/apikey/?q=%00",
    "/admin/accounts/organisation/?q=%00",
    "/admin/accounts/user/?q=%00",
    "/admin/%00/",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_in_the_path_or_query_is_a_400_page(as_superuser_owner, url):
    response = as_superuser_owner.get(url)

    assert response.status_code == 400
    assert b"Bad request" in response.content


def test_a_nul_on_the_api_is_a_json_400_naming_the_parameter_and_a_call(client, acme_key):
    from usage.calls import api_calls_flush
    from usage.models import ApiCallCount

    response = client.get("/usage?start_month=%00", HTTP_AUTHORIZATION=f"Bearer {acme_key.plaintext}")
    api_calls_flush()  # with Redis, counts reach the table at a flush

    assert response.status_code == 400
    assert "start_month" in response.json()
    assert response["Cache-Control"] == "no-store"
    assert sum(ApiCallCount.objects.values_list("calls", flat=True)) == 1


@pytest.mark.django_db
def test_a_nul_in_an_ingested_jobs_path_is_not_found(client):
    from accounts.services import organisation_create, service_key_create

    acme = organisation_create(name="Acme", org_id="org_acme")
    key = service_key_create(name="platform", organisations=[acme]).plaintext

    for path in ("/api/v1/ingest/jobs/org_acme/j%001", "/api/v1/ingest/jobs/org_ac%00me/j-1"):
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 404
        assert client.delete(path, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404


def test_a_percent_encoded_percent_is_not_a_nul(as_superuser_owner):
    assert as_superuser_owner.get("/dashboard/?q=%2500").status_code == 200


@pytest.mark.parametrize("url", [USAGE_URL, CSV_URL])
@pytest.mark.parametrize(
    "query",
    ["end=0001-05", "end=0001-11", "start=0001-01", "start=0000-12", "start=0001-01&end=0001-00"],
)
def test_ranges_reaching_before_the_year_1_are_form_errors(as_superuser_owner, url, query):
    response = as_superuser_owner.get(f"{url}?{query}")

    assert response.status_code == 400


@pytest.mark.parametrize("url", [USAGE_URL, CSV_URL])
@pytest.mark.parametrize("query", ["start=0001-01&end=0001-01", "end=0001-12", "start=0001-01&end=0001-12"])
def test_the_first_months_of_the_calendar_are_served(as_superuser_owner, url, query):
    assert as_superuser_owner.get(f"{url}?{query}").status_code == 200


@pytest.mark.parametrize("month", ["9999-12", "0001-01"])
def test_the_admin_job_month_filter_takes_the_ends_of_the_calendar(as_superuser_owner, month):
    assert as_superuser_owner.get(f"/admin/usage/job/?month={month}").status_code == 200


# 2. No CSV cell a spreadsheet would run as a formula.

FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"]


def _csv_rows(response):
    import csv
    import io

    return list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_tier_and_key_names_cannot_smuggle_a_formula_into_the_csv(client, owner, acme, add_jobs, start):
    import datetime as dt

    from accounts.services import api_key_create
    from tests.factories import make_job
    from usage.models import PricingPlan, PricingTier
    from usage.services import organisation_plan_set

    plan = PricingPlan.objects.create(name="hostile", transcription_rate=1, note_rate=1)
    PricingTier.objects.create(plan=plan, name=f"{start}cmd|' /C calc'!A0", first_rank=1, discount_percent=5)
    organisation_plan_set(organisation=acme, plan=plan)
    key = api_key_create(organisation=acme, name=f'{start}HYPERLINK("http://x")').api_key
    add_jobs([make_job(acme, created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), api_key=key)])
    client.force_login(owner)

    rows = _csv_rows(client.get(CSV_URL))

    cells = [cell for row in rows for cell in row]
    assert f"'{start}cmd|' /C calc'!A0_jobs" in rows[0]
    assert f"'{start}cmd|' /C calc'!A0" in cells
    # Key names are stripped of surrounding whitespace when created; what is stored is neutralised.
    assert (f"'{key.name}" if key.name.startswith(start) else key.name) in cells
    assert not [cell for cell in cells if cell[:1] in FORMULA_STARTS and not cell.lstrip("-").isdigit()]


# 3. Brute force: login lockout (django-axes) and a limit on password-reset mails.


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_ten_failed_logins_lock_the_username_and_address_out(client, settings, superuser, login_url):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(login_url, {"username": "root", "password": "wrong"})
        assert response.status_code == 200
    # The tenth failure locks the pair out at once.
    assert client.post(login_url, {"username": "root", "password": "wrong"}).status_code == 429

    locked = client.post(login_url, {"username": "root", "password": "root-pass-123"})

    assert locked.status_code == 429
    assert b"Too many failed log-ins" in locked.content
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_username_and_address(client, settings, owner, member):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})

    other_user = client.post("/accounts/login/", {"username": "max", "password": "member-pass-123"})
    other_address = client.post(
        "/accounts/login/", {"username": "olivia", "password": "owner-pass-123"}, REMOTE_ADDR="10.9.9.9"
    )

    assert other_user.status_code == 302
    assert other_address.status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, settings, owner):
    import datetime as dt

    import time_machine

    with time_machine.travel(dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC), tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
    with time_machine.travel(dt.datetime(2025, 6, 1, 12, 16, tzinfo=dt.UTC), tick=False):
        response = client.post("/accounts/login/", {"username": "olivia", "password": "owner-pass-123"})

    assert response.status_code == 302


def test_twenty_reset_requests_do_not_send_twenty_mails(client, settings, owner, mailoutbox):
    for _ in range(20):
        response = client.post("/accounts/password_reset/", {"email": "olivia@acme.test"})
        assert response.status_code == 302
        assert response["Location"] == reverse("password_reset_done")

    assert len(mailoutbox) == settings.PASSWORD_RESET_EMAIL_LIMIT


def test_reset_requests_are_limited_per_client_address(client, settings, db, mailoutbox):
    from accounts.models import User

    for number in range(20):
        User.objects.create_user(f"user{number}", f"user{number}@acme.test", "pass-1234567")
        client.post("/accounts/password_reset/", {"email": f"user{number}@acme.test"})

    assert len(mailoutbox) == settings.PASSWORD_RESET_IP_LIMIT


# 4. Staff see customer pages only through a role that grants viewing organisations.

CUSTOMER_PAGES = [USAGE_URL, CSV_URL, reverse("api-keys", kwargs={"org_id": "org_acme"})]


@pytest.mark.parametrize("url", CUSTOMER_PAGES)
def test_staff_without_a_role_get_the_404_of_an_outsider(client, staff, acme, url):
    client.force_login(staff)

    assert client.get(url).status_code == 404


@pytest.mark.parametrize("role", ["support_staff", "finance_staff", "superuser"])
@pytest.mark.parametrize("url", CUSTOMER_PAGES)
def test_staff_whose_role_grants_viewing_see_customer_pages(client, request, acme, role, url):
    client.force_login(request.getfixturevalue(role))

    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", CUSTOMER_PAGES)
def test_the_view_permission_granted_by_hand_is_enough(client, staff, acme, url):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_organisation"))
    client.force_login(staff)

    assert client.get(url).status_code == 200


def test_staff_without_a_role_see_only_their_own_organisations_on_the_dashboard(client, staff, acme, globex):
    membership_add(organisation=globex, user=staff, role=Membership.Role.MEMBER)
    client.force_login(staff)

    response = client.get(reverse("dashboard"))

    # One membership and no staff view: straight to that organisation's usage, like any member.
    assert response.status_code == 302
    assert response["Location"] == reverse("usage-page", kwargs={"org_id": "org_globex"})


def test_staff_without_a_role_get_no_organisation_list(client, staff, acme):
    client.force_login(staff)

    page = client.get(reverse("dashboard")).content.decode()

    assert "All organisations" not in page
    assert "org_acme" not in page


# 5. The admin never filters on a secret, and asks before deactivating or revoking.


@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/apikey/?digest=abc",
        "/admin/accounts/apikey/?digest__startswith=a",
        "/admin/accounts/apikey/?lookup=abcdef",
        "/admin/accounts/apikey/?lookup__startswith=a",
        "/admin/usage/job/?api_key__digest__startswith=a",
        "/admin/accounts/organisation/?api_keys__lookup__startswith=a",
        "/admin/accounts/user/?password__startswith=md5",
    ],
)
def test_admin_lookups_on_secret_fields_are_refused(admin_client, acme_key, url):
    admin_client.raise_request_exception = False

    assert admin_client.get(url).status_code == 400


def test_deactivating_organisations_asks_first(admin_client, acme, globex):
    from accounts.models import Organisation

    url = reverse("admin:accounts_organisation_changelist")
    data = {"action": "deactivate", "_selected_action": [str(acme.pk), str(globex.pk)]}

    asked = admin_client.post(url, data)

    assert asked.status_code == 200
    assert "Acme" in asked.content.decode() and "Globex" in asked.content.decode()
    assert Organisation.objects.filter(is_active=True).count() == 2
    assert admin_client.post(url, {**data, "confirm": "yes"}).status_code == 302
    assert Organisation.objects.filter(is_active=True).count() == 0


def test_revoking_keys_asks_first(admin_client, acme_key):
    url = reverse("admin:accounts_apikey_changelist")
    data = {"action": "revoke_keys", "_selected_action": [str(acme_key.api_key.pk)]}

    asked = admin_client.post(url, data)

    acme_key.api_key.refresh_from_db()
    assert asked.status_code == 200 and b"Yes, revoke" in asked.content
    assert not acme_key.api_key.is_revoked
    admin_client.post(url, {**data, "confirm": "yes"})
    acme_key.api_key.refresh_from_db()
    assert acme_key.api_key.is_revoked


# 6 is in tests/accounts/test_portal_keys.py (the secret in the creating POST's answer).

# 7. Security headers on every response; no caching of an organisation's pages.


def _inline_scripts(html: str) -> list[str]:
    import re

    return [
        tag
        for tag in re.findall(r"<script\b[^>]*>", html, flags=re.IGNORECASE)
        if "src=" not in tag and 'type="application/json"' not in tag
    ]


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/login/",
        "/dashboard/",
        USAGE_URL,
        reverse("api-keys", kwargs={"org_id": "org_acme"}),
        "/admin/",
        "/admin/accounts/apikey/",
        "/admin/usage/job/",
        "/api/docs/",
    ],
)
def test_pages_carry_the_security_headers_and_no_inline_script(as_superuser_owner, acme_key, url):
    response = as_superuser_owner.get(url)

    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "camera=()" in response["Permissions-Policy"]
    assert response["Referrer-Policy"] == "same-origin"
    assert _inline_scripts(response.content.decode()) == []


def test_swagger_ui_renders_with_its_start_up_script_as_a_file(client):
    page = client.get("/api/docs/")
    html = page.content.decode()

    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()
    assert "/api/schema/" in script.content.decode()


def test_the_api_carries_the_headers_too(client, acme_key):
    response = client.get("/api/v1/usage", HTTP_AUTHORIZATION=f"Bearer {acme_key.plaintext}")

    assert response.status_code == 200
    assert "default-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize(
    "url",
    [
        USAGE_URL,
        CSV_URL,
        reverse("api-keys", kwargs={"org_id": "org_acme"}),
    ],
)
def test_organisation_pages_are_private_and_never_stored(as_superuser_owner, url):
    response = as_superuser_owner.get(url)

    assert response.status_code == 200
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= cache_control


def test_the_revoke_confirmation_is_never_stored_either(as_superuser_owner, acme_key):
    url = reverse("api-key-revoke", kwargs={"org_id": "org_acme", "key_id": acme_key.api_key.pk})

    assert "no-store" in as_superuser_owner.get(url)["Cache-Control"]


# 8. seed_demo refuses to run with DEBUG=False unless forced.


def test_seed_demo_refuses_without_debug(db, settings):
    from django.core.management import CommandError, call_command

    from accounts.models import User

    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo")
    assert not User.objects.filter(username="demo-owner").exists()


def test_seed_demo_runs_without_debug_when_forced(db, settings):
    import io

    from django.core.management import call_command

    from accounts.models import User

    settings.DEBUG = False
    call_command("seed_demo", "--force", stdout=io.StringIO())
    assert User.objects.filter(username="demo-owner").exists()
