"""The JSON bodies of ``GET /usage`` and ``GET /api/v1/usage``, word for word as the contracts.

The ``*_data`` functions turn the usage selectors' results into the response bodies: counts as
integers, money as ``Decimal`` rounded half-up to 5 places, percentages to 2 places (rendered as
exact JSON numbers by ``portal.renderers.ExactJSONRenderer``). The serializer classes only
describe those bodies in the OpenAPI schema; the test suite checks the bodies against them.
"""

from rest_framework import serializers

from accounts.models import Organisation
from portal.api.renderers import ExactJSONRenderer
from usage.months import format_month
from usage.pricing import present_money, present_percent
from usage.selectors import AllTimeApiUsage, Usage, UsageReport


def _money(usage: Usage) -> dict:
    return {
        "base_cost": present_money(usage.base_cost),
        "final_cost": present_money(usage.final_cost),
        "savings": present_money(usage.savings),
    }


def monthly_usage_data(report: UsageReport) -> dict:
    """The ``GET /usage`` body for ``report``: exactly the fields of contracts/monthly-usage.md."""
    return {
        "period": {
            "start_month": format_month(report.start_month),
            "end_month": format_month(report.end_month),
        },
        "totals": {
            "jobs": report.totals.jobs,
            "transcription_tokens": report.totals.transcription_tokens,
            "note_tokens": report.totals.note_tokens,
            **_money(report.totals),
            "effective_discount_percentage": present_percent(report.totals.effective_discount_percentage),
            "free_jobs_left": report.free_jobs_left,
        },
        "monthly_breakdown": [
            {
                "month": format_month(month.month),
                "jobs": month.jobs,
                "transcription_tokens": month.transcription_tokens,
                "note_tokens": month.note_tokens,
                **_money(month),
                "current_tier_discount": present_percent(month.current_tier(report.plan).discount_percent),
                "tiers": dict(month.tiers),
            }
            for month in report.months
        ],
        "api_keys": {
            name: {
                "jobs": usage.jobs,
                "tokens": {
                    "transcription": usage.transcription_tokens,
                    "note_generation": usage.note_tokens,
                },
                "costs": {
                    "base": present_money(usage.base_cost),
                    "final": present_money(usage.final_cost),
                    "savings": present_money(usage.savings),
                },
                "tiers": dict(usage.tiers),
            }
            for name, usage in report.keys.items()
        },
    }


def monthly_usage_json(report: UsageReport) -> bytes:
    """The ``GET /usage`` body for ``report`` as the JSON the API sends (cached as these bytes)."""
    return ExactJSONRenderer().render(monthly_usage_data(report))


def all_time_usage_data(*, organisation: Organisation, usage: AllTimeApiUsage) -> dict:
    """The ``GET /api/v1/usage`` body: exactly the fields of contracts/all-time-usage.md."""
    return {
        "org_id": organisation.org_id,
        "period": "all_time",
        "total_jobs": usage.total_jobs,
        "completed_jobs": usage.completed_jobs,
        "total_duration_seconds": usage.total_duration_seconds,
        "jobs_by_language": dict(usage.jobs_by_language),
        "api_calls": usage.api_calls,
    }


# Schema descriptions -------------------------------------------------------------------------


def _count(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, help_text=help_text)


def _number(help_text: str) -> serializers.FloatField:
    return serializers.FloatField(min_value=0, help_text=help_text)


def _tiers(help_text: str) -> serializers.DictField:
    return serializers.DictField(child=serializers.IntegerField(min_value=0), help_text=help_text)


_MONEY = "Money, summed exactly and rounded half-up to 5 decimal places."


class PeriodSerializer(serializers.Serializer):
    start_month = serializers.RegexField(r"^\d{4}-\d{2}$", help_text="First month, YYYY-MM (UTC).")
    end_month = serializers.RegexField(r"^\d{4}-\d{2}$", help_text="Last month, YYYY-MM (UTC), inclusive.")


class TotalsSerializer(serializers.Serializer):
    jobs = _count("Jobs in the period (every status; API and web).")
    transcription_tokens = _count("Transcription tokens in the period.")
    note_tokens = _count("Note-generation tokens in the period.")
    base_cost = _number(f"Cost before tier discounts and free jobs. {_MONEY}")
    final_cost = _number(f"Cost charged. {_MONEY}")
    savings = _number(f"base_cost - final_cost. {_MONEY}")
    effective_discount_percentage = serializers.FloatField(
        min_value=0,
        max_value=100,
        help_text="savings / base_cost x 100, rounded half-up to 2 places (0 when base_cost is 0).",
    )
    free_jobs_left = _count("Free jobs of the allowance not used yet (all time; not period dependent).")


class MonthSerializer(serializers.Serializer):
    month = serializers.RegexField(r"^\d{4}-\d{2}$", help_text="The month, YYYY-MM (UTC).")
    jobs = _count("Jobs in the month.")
    transcription_tokens = _count("Transcription tokens in the month.")
    note_tokens = _count("Note-generation tokens in the month.")
    base_cost = _number(f"Cost before discounts. {_MONEY}")
    final_cost = _number(f"Cost charged. {_MONEY}")
    savings = _number(f"base_cost - final_cost. {_MONEY}")
    current_tier_discount = serializers.FloatField(
        min_value=0,
        max_value=100,
        help_text="Discount percent of the tier of the month's last job (the first tier's when none).",
    )
    tiers = _tiers("Jobs per tier of the plan, by tier name; every tier is present.")


class KeyTokensSerializer(serializers.Serializer):
    transcription = _count("Transcription tokens of the key's jobs.")
    note_generation = _count("Note-generation tokens of the key's jobs.")


class KeyCostsSerializer(serializers.Serializer):
    base = _number(f"Cost before discounts. {_MONEY}")
    final = _number(f"Cost charged. {_MONEY}")
    savings = _number(f"base - final. {_MONEY}")


class KeyUsageSerializer(serializers.Serializer):
    jobs = _count("Jobs submitted with this key in the period.")
    tokens = KeyTokensSerializer()
    costs = KeyCostsSerializer()
    tiers = _tiers("The key's jobs per tier of the plan; every tier is present.")


class MonthlyUsageSerializer(serializers.Serializer):
    period = PeriodSerializer()
    totals = TotalsSerializer()
    monthly_breakdown = serializers.ListField(
        child=MonthSerializer(), help_text="Every month of the period in order, months without jobs included."
    )
    api_keys = serializers.DictField(
        child=KeyUsageSerializer(),
        help_text="Every key (revoked ones included) with jobs in the period, by key name.",
    )


class AllTimeUsageSerializer(serializers.Serializer):
    org_id = serializers.CharField(help_text="Your organisation id.")
    period = serializers.ChoiceField(choices=["all_time"], help_text='Always "all_time".')
    total_jobs = _count("Jobs submitted via the API (with a key), all time.")
    completed_jobs = _count("API jobs with both a transcript and an LRC.")
    total_duration_seconds = _count("Sum of the audio duration of the API jobs, in seconds.")
    jobs_by_language = serializers.DictField(
        child=serializers.IntegerField(min_value=0), help_text="API jobs by language name."
    )
    api_calls = _count("API requests of your organisation, all time, this one included.")


class PingSerializer(serializers.Serializer):
    org_id = serializers.CharField(help_text="The organisation of the key.")


class ParameterErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    start_month = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Present when start_month is the problem."
    )
    end_month = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Present when end_month is the problem."
    )
