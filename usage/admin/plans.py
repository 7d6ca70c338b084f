"""Staff admin of pricing plans and their tiers. A plan's tier ladder is validated whole, and
every edit tells ``usage.services`` so cached usage (or, for new ranks, the tiers) is renewed."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.forms.models import BaseInlineFormSet

from portal.admin_base import PortalModelAdmin, ReadOnlyAdminMixin
from usage.engine.derive import tier_ladder
from usage.models import STANDARD_PLAN_NAME, PricingPlan, PricingTier
from usage.pricing import tier_problems
from usage.services import pricing_plan_changed, pricing_plan_tiers_changed


class PricingTierForm(forms.ModelForm):
    discount_percent = forms.DecimalField(min_value=0, max_value=100, max_digits=5, decimal_places=2)

    class Meta:
        model = PricingTier
        fields = ("name", "first_rank", "discount_percent")


class PricingTierFormSet(BaseInlineFormSet):
    """Validates the plan's tiers as a whole ladder (``usage.pricing.tier_problems``)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        ladder = sorted(
            (form.cleaned_data["first_rank"], form.cleaned_data["discount_percent"])
            for form in self.forms
            if form.cleaned_data and not self._should_delete_form(form)
        )
        problems = tier_problems(ladder)
        if problems:
            raise forms.ValidationError([problem[0].upper() + problem[1:] + "." for problem in problems])


class PricingTierInline(admin.TabularInline):
    model = PricingTier
    form = PricingTierForm
    formset = PricingTierFormSet
    extra = 0
    min_num = 1
    ordering = ("first_rank",)


@admin.register(PricingPlan)
class PricingPlanAdmin(PortalModelAdmin):
    """Pricing plans and their tiers. Prices and discounts apply when usage is read; a change
    of tier ranks marks every organisation on the plan for recompute."""

    list_display = (
        "name",
        "per_job_fee",
        "transcription_rate",
        "note_rate",
        "tier_summary",
        "organisation_count",
    )
    search_fields = ("name",)
    ordering = ("name",)
    inlines = (PricingTierInline,)
    fieldsets = (
        (None, {"fields": ("name",)}),
        ("Prices", {"fields": ("per_job_fee", "transcription_rate", "note_rate")}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related("tiers")
            .annotate(organisation_count=Count("organisations"))
        )

    def get_readonly_fields(self, request, obj=None):
        # Organisations without a plan are priced by the plan of this name.
        return ("name",) if obj is not None and obj.name == STANDARD_PLAN_NAME else ()

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.name == STANDARD_PLAN_NAME:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="tiers")
    def tier_summary(self, obj):
        tiers = sorted(obj.tiers.all(), key=lambda tier: tier.first_rank)
        return ", ".join(
            f"{tier.name} from {tier.first_rank:,} at {tier.discount_percent}%" for tier in tiers
        )

    @admin.display(description="organisations (assigned)", ordering="organisation_count")
    def organisation_count(self, obj):
        return obj.organisation_count

    def save_related(self, request, form, formsets, change):
        before = tier_ladder(plan_id=form.instance.pk) if change else None
        super().save_related(request, form, formsets, change)
        if change:
            pricing_plan_changed(plan_id=form.instance.pk)
        if change and tier_ladder(plan_id=form.instance.pk) != before:
            marked = pricing_plan_tiers_changed(plan_id=form.instance.pk)
            self.message_user(
                request,
                f"The tier ranks changed: the usage of {marked} organisation(s) will be recomputed "
                "at their next read (or by the nightly run).",
                messages.INFO,
            )


@admin.register(PricingTier)
class PricingTierAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    """Read-only: tiers are edited with their plan, where the whole ladder is validated."""

    list_display = ("plan", "name", "first_rank", "discount_percent")
    list_select_related = ("plan",)
    list_filter = ("plan",)
    search_fields = ("name", "plan__name")
    ordering = ("plan__name", "first_rank")
    fieldsets = ((None, {"fields": ("plan", "name", "first_rank", "discount_percent")}),)

