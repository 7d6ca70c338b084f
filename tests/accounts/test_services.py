"""Services refuse bad writes with typed domain errors and leave nothing half-written."""

import pytest

from accounts.models import ApiKey, Organisation


def test_renaming_a_key_to_a_taken_name_is_a_typed_error(acme):
    from accounts.services import DuplicateKeyName, api_key_create, api_key_rename

    api_key_create(organisation=acme, name="production")
    staging = api_key_create(organisation=acme, name="staging").api_key

    with pytest.raises(DuplicateKeyName) as raised:
        api_key_rename(api_key=staging, name=" production ")

    assert raised.value.field == "name"
    staging.refresh_from_db()
    assert staging.name == "staging"


def test_renaming_a_key_renews_the_cached_usage_of_its_organisation(acme):
    from accounts.services import api_key_create, api_key_rename

    staging = api_key_create(organisation=acme, name="staging").api_key
    version = Organisation.objects.get(pk=acme.pk).usage_version

    api_key_rename(api_key=staging, name="preview")

    assert Organisation.objects.get(pk=acme.pk).usage_version == version + 1
    assert ApiKey.objects.get(pk=staging.pk).name == "preview"


@pytest.mark.parametrize("allowance", [-1, 2.5, True, "3"])
def test_an_invalid_free_allowance_is_a_typed_error(acme, allowance):
    from usage.services import InvalidAllowance, organisation_free_allowance_set

    with pytest.raises(InvalidAllowance):
        organisation_free_allowance_set(organisation=acme, allowance=allowance)
    assert Organisation.objects.get(pk=acme.pk).free_job_allowance == 0
