from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

STANDARD_PLAN_NAME = "standard"

# Upper bounds of a job's counts, enforced by the job validator (usage.validation) and by a check
# constraint. A job is one recording: 31 days of audio is beyond any, and fits a 32-bit column.
# Its tokens are bounded a hundred times above what 31 days of speech make (about 10 million).
# So any sum of fewer than 9.2 billion jobs (2^63 / 10^9), an organisation's whole history
# included, fits the 64-bit aggregate columns; and the PostgreSQL checksum
# (usage.aggregation.checksum_check), which adds a job's counts times coefficients below 2^29 in
# one 64-bit integer, needs audio + tokens below 2^34: here they stay below 2^31.
MAX_AUDIO_DURATION_SECONDS = 31 * 24 * 60 * 60  # 2,678,400
MAX_TOKENS = 10**9

CURRENCY_RE = r"^[A-Z]{3}$"
currency_validator = RegexValidator(
    CURRENCY_RE, "A currency is an ISO 4217 code: three capital letters, such as USD."
)


class PricingPlan(models.Model):
    """Prices per job and per 1,000 tokens, plus graduated monthly tiers (see ``PricingTier``)."""

    name = models.CharField(max_length=50, unique=True)
    per_job_fee = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    transcription_rate = models.DecimalField(
        max_digits=14, decimal_places=6, help_text="Price per 1,000 transcription tokens."
    )
    note_rate = models.DecimalField(max_digits=14, decimal_places=6, help_text="Price per 1,000 note tokens.")
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[currency_validator],
        help_text="ISO 4217 code of the prices and of every cost shown, such as USD, EUR or INR.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(per_job_fee__gte=0) & Q(transcription_rate__gte=0) & Q(note_rate__gte=0),
                name="pricingplan_prices_gte_0",
            ),
            models.CheckConstraint(condition=Q(currency__regex=CURRENCY_RE), name="pricingplan_currency_iso"),
        ]

    def __str__(self) -> str:
        return self.name


class PricingTier(models.Model):
    """A band of monthly job ranks, from ``first_rank`` up to the next tier's first rank - 1."""

    plan = models.ForeignKey(PricingPlan, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(max_length=50)
    first_rank = models.PositiveIntegerField()
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)

    class Meta:
        ordering = ["plan", "first_rank"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "name"], name="pricingtier_unique_name"),
            models.UniqueConstraint(fields=["plan", "first_rank"], name="pricingtier_unique_first_rank"),
            models.CheckConstraint(condition=Q(first_rank__gte=1), name="pricingtier_first_rank_gte_1"),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100),
                name="pricingtier_discount_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name}/{self.name}"


class Job(models.Model):
    """One audio job of an organisation, as loaded from the job platform.

    ``month``, ``tier`` and ``is_free`` are derived (by ``usage.services``, never by hand): the
    UTC month of ``created_at``, the position (1-based) of the plan tier that holds the job's rank
    within its month, and whether the job is among the organisation's free jobs.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"

    class Source(models.TextChoices):
        API = "api", "API"
        WEB = "web", "Web"

    # No index of its own: (organisation, …) leads both the unique and the rank index.
    organisation = models.ForeignKey(
        "accounts.Organisation", on_delete=models.PROTECT, related_name="jobs", db_index=False
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )
    source = models.CharField(max_length=3, choices=Source.choices)
    external_id = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    language = models.CharField(max_length=64)
    audio_duration_seconds = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices)
    has_transcript = models.BooleanField(default=False)
    has_lrc = models.BooleanField(default=False)
    transcription_tokens = models.PositiveBigIntegerField(default=0)
    note_tokens = models.PositiveBigIntegerField(default=0)
    month = models.DateField(editable=False)
    tier = models.PositiveSmallIntegerField(default=1, editable=False)
    is_free = models.BooleanField(default=False, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "external_id"], name="job_unique_external_id"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "processing", "completed", "failed"]),
                name="job_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(audio_duration_seconds__gte=0)
                & Q(transcription_tokens__gte=0)
                & Q(note_tokens__gte=0),
                name="job_counts_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(audio_duration_seconds__lte=MAX_AUDIO_DURATION_SECONDS)
                & Q(transcription_tokens__lte=MAX_TOKENS)
                & Q(note_tokens__lte=MAX_TOKENS),
                name="job_counts_bounded",
                violation_error_message=(
                    f"A job has at most {MAX_AUDIO_DURATION_SECONDS:,} seconds of audio (31 days) "
                    f"and at most {MAX_TOKENS:,} tokens of each kind."
                ),
            ),
            models.CheckConstraint(
                condition=Q(source="api", api_key__isnull=False) | Q(source="web", api_key__isnull=True),
                name="job_source_matches_key",
            ),
            models.CheckConstraint(condition=Q(tier__gte=1), name="job_tier_gte_1"),
        ]
        indexes = [
            # Ranks jobs within an organisation-month, and (month being monotonic in created_at)
            # orders an organisation's jobs of all time for the free allowance.
            models.Index(fields=["organisation", "month", "created_at", "id"], name="job_rank_idx"),
            models.Index(fields=["organisation"], condition=Q(is_free=True), name="job_free_idx"),
            # The admin job list: newest first (and month filters as created_at ranges) without
            # sorting the table, and an exact external id search without scanning it.
            models.Index(fields=["created_at", "id"], name="job_created_idx"),
            models.Index(fields=["external_id"], name="job_external_id_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class MonthlyUsage(models.Model):
    """Stored aggregate: the jobs of one organisation-month, key (or none), tier and free flag."""

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    tier = models.PositiveSmallIntegerField()
    is_free = models.BooleanField()
    jobs = models.PositiveBigIntegerField()
    completed_jobs = models.PositiveBigIntegerField()
    audio_duration_seconds = models.PositiveBigIntegerField()
    transcription_tokens = models.PositiveBigIntegerField()
    note_tokens = models.PositiveBigIntegerField()

    class Meta:
        verbose_name_plural = "monthly usage"
        permissions = [("recompute_usage", "Can recompute the stored usage of organisations")]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "month", "api_key", "tier", "is_free"],
                condition=Q(api_key__isnull=False),
                name="monthlyusage_unique_key_row",
            ),
            models.UniqueConstraint(
                fields=["organisation", "month", "tier", "is_free"],
                condition=Q(api_key__isnull=True),
                name="monthlyusage_unique_web_row",
            ),
        ]
        indexes = [models.Index(fields=["organisation", "month"], name="monthlyusage_org_month_idx")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} tier {self.tier}{' free' if self.is_free else ''}: {self.jobs} jobs"


class DailyUsage(models.Model):
    """Stored aggregate: the jobs of one organisation on one UTC day, by tier and free flag.

    Kept by the engine with ``MonthlyUsage`` (same scopes, same reconcile), so a month's days add
    up exactly to the month; ``month`` is the first day of ``day``'s month, for those scopes.
    The status counts split ``jobs`` by job status.
    """

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    day = models.DateField()
    tier = models.PositiveSmallIntegerField()
    is_free = models.BooleanField()
    jobs = models.PositiveBigIntegerField()
    transcription_tokens = models.PositiveBigIntegerField()
    note_tokens = models.PositiveBigIntegerField()
    queued_jobs = models.PositiveBigIntegerField()
    processing_jobs = models.PositiveBigIntegerField()
    completed_status_jobs = models.PositiveBigIntegerField()
    failed_jobs = models.PositiveBigIntegerField()

    class Meta:
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "month", "day", "tier", "is_free"], name="dailyusage_unique_row"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} tier {self.tier}{' free' if self.is_free else ''}: {self.jobs} jobs"


class LanguageUsage(models.Model):
    """Stored aggregate: the jobs of one organisation-month in one language, by API or web."""

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    language = models.CharField(max_length=64)
    via_api = models.BooleanField()
    jobs = models.PositiveBigIntegerField()
    completed_jobs = models.PositiveBigIntegerField()
    audio_duration_seconds = models.PositiveBigIntegerField()

    class Meta:
        verbose_name_plural = "language usage"
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "month", "language", "via_api"], name="languageusage_unique_row"
            ),
        ]
        # Lets the admin list the distinct languages by skipping through an index (a handful of
        # lookups) instead of a DISTINCT over the jobs or over this table.
        indexes = [models.Index(fields=["language"], name="languageusage_language_idx")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.language}: {self.jobs} jobs"


class StaleMonth(models.Model):
    """A mark that an organisation-month (or, with no month, all its months) needs recomputing.

    Writers add marks in the transaction that changes jobs or pricing; the next read or the end of
    the write batch resolves them, deleting exactly the marks it saw.
    """

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="+")
    month = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organisation"], name="stalemonth_org_idx")]

    def __str__(self) -> str:
        return f"stale {self.month:%Y-%m}" if self.month else "stale (all months)"


class ApiCallCount(models.Model):
    """How many authenticated API requests one key made in one UTC month."""

    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, related_name="call_counts")
    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    calls = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "month"], name="apicallcount_unique_key_month"),
        ]
        indexes = [models.Index(fields=["organisation", "month"], name="apicallcount_org_month_idx")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.calls} calls"


class TaskLock(models.Model):
    """A named lease that keeps two runs of the same periodic work from overlapping.

    Claimed with a conditional update (works the same on SQLite and PostgreSQL). On PostgreSQL
    the holder also holds a session advisory lock, so a lease whose holder died (its connection
    is gone) is taken over by the next claimant; on SQLite it expires (``usage.engine.locks``).
    """

    name = models.CharField(max_length=100, primary_key=True)
    locked_until = models.DateTimeField()
    owner = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return self.name
