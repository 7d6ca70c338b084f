from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

ORG_ID_RE = r"^org_[a-z0-9]+$"
org_id_validator = RegexValidator(
    ORG_ID_RE, "An organisation id is 'org_' followed by lowercase letters/digits."
)


class User(AbstractUser):
    """A person who logs in: a customer member, or staff when ``is_staff`` is set."""

    class Meta:
        db_table = "accounts_user"


class Organisation(models.Model):
    """A customer account: owns API keys and jobs, and is billed by a pricing plan."""

    org_id = models.CharField("organisation id", max_length=40, unique=True, validators=[org_id_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField("active", default=True)
    plan = models.ForeignKey(
        "usage.PricingPlan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="organisations",
        help_text="Leave empty to use the 'standard' plan.",
    )
    free_job_allowance = models.PositiveIntegerField(
        default=0, help_text="The organisation's first N jobs of all time cost nothing."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped in the transaction of every change that alters what usage reads show (aggregates,
    # plan, allowance, key names), so a cached response keyed by it can never be stale.
    usage_version = models.PositiveBigIntegerField(default=0, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="organisations"
    )

    class Meta:
        ordering = ["name"]
        permissions = [
            ("change_free_job_allowance", "Can change the free-job allowance of an organisation"),
            ("change_organisation_plan", "Can move an organisation to another pricing plan"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(org_id__regex=ORG_ID_RE), name="organisation_org_id_format"),
            models.CheckConstraint(
                condition=Q(free_job_allowance__gte=0), name="organisation_allowance_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.org_id})"


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="membership_unique_user_org"),
            models.CheckConstraint(condition=Q(role__in=["owner", "member"]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation.org_id} ({self.role})"


class ApiKey(models.Model):
    """A secret that authenticates REST calls for one organisation; only its digest is stored."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["organisation", "name"]
        permissions = [("revoke_apikey", "Can revoke API keys")]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="apikey_unique_name_per_org"),
            models.CheckConstraint(condition=~Q(name=""), name="apikey_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def prefix(self) -> str:
        from .keys import public_prefix

        return public_prefix(self.lookup)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ServiceKey(models.Model):
    """A secret of the job platform (not of an organisation) that authenticates job ingestion.

    Only its digest is stored. ``organisations`` is its scope: the organisations whose jobs it may
    write and read; an empty scope means every organisation. Its requests are never API calls.
    """

    name = models.CharField(max_length=100, unique=True)
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    organisations = models.ManyToManyField(
        Organisation,
        blank=True,
        related_name="service_keys",
        help_text="The organisations this key may write jobs of; none selected means all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "service key"
        ordering = ["name"]
        permissions = [("revoke_servicekey", "Can revoke service keys")]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="servicekey_name_not_empty")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def prefix(self) -> str:
        from .keys import SERVICE_KEY_PREFIX, public_prefix

        return public_prefix(self.lookup, prefix=SERVICE_KEY_PREFIX)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

class Invitation(models.Model):
    """An owner's invitation of an email address to join an organisation with a role.

    The link sent by email carries a signed, expiring token of the row's id
    (``accounts.team.invitation_token``); the row records who accepted it, and when, so
    a link is good for one acceptance only.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=["owner", "member"]), name="invitation_role_valid"),
            models.CheckConstraint(condition=~Q(email=""), name="invitation_email_not_empty"),
        ]
        indexes = [models.Index(fields=["organisation", "accepted_at"], name="invitation_org_pending_idx")]

    def __str__(self) -> str:
        return f"{self.email} to {self.organisation.org_id} ({self.role})"

    @property
    def is_accepted(self) -> bool:
        return self.accepted_at is not None
