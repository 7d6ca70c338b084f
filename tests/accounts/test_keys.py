from django.db import connection

from accounts import keys
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, api_key_touch, api_key_verify


def test_generated_keys_are_recognisable_and_long_enough():
    generated = keys.generate_key()
    assert generated.plaintext.startswith("upk_")
    assert keys.parse_lookup(generated.plaintext) == generated.lookup
    secret = generated.plaintext.split("_", 2)[2]
    assert len(secret) * 6 >= 256  # base64 characters carry 6 bits each
    assert generated.plaintext != keys.generate_key().plaintext


def test_digest_is_keyed_and_checked_in_constant_time_helper():
    generated = keys.generate_key()
    digest = keys.key_digest(generated.plaintext, signing_key="one")
    assert digest != keys.key_digest(generated.plaintext, signing_key="two")
    assert keys.key_matches(generated.plaintext, digest, signing_keys=["two", "one"])
    assert not keys.key_matches(generated.plaintext, digest, signing_keys=["two"])


def test_a_created_key_verifies_and_its_secret_is_nowhere_in_the_database(acme):
    created = api_key_create(organisation=acme, name="ci")
    assert api_key_verify(created.plaintext) == created.api_key
    secret = created.plaintext.split("_", 2)[2]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        dump = repr(cursor.fetchall())
    assert created.api_key.lookup in dump
    assert secret not in dump and created.plaintext not in dump


def test_wrong_truncated_malformed_and_revoked_keys_fail(acme):
    created = api_key_create(organisation=acme, name="ci")
    plaintext = created.plaintext
    wrong_secret = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    for candidate in (
        wrong_secret,
        plaintext[:-1],
        plaintext + "x",
        "",
        "Bearer " + plaintext,
        plaintext.replace("upk_", "xyz_"),
        keys.generate_key().plaintext,
    ):
        assert api_key_verify(candidate) is None, candidate
    api_key_revoke(api_key=created.api_key)
    assert api_key_verify(plaintext) is None


def test_a_key_signed_under_an_old_secret_key_is_rehashed(acme, settings):
    created = api_key_create(organisation=acme, name="ci")
    old_digest = created.api_key.digest
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-that-is-long-enough-for-the-test-0123456789"
    assert api_key_verify(created.plaintext) == created.api_key
    assert ApiKey.objects.get(pk=created.api_key.pk).digest != old_digest


def test_last_used_is_written_at_most_once_a_minute(acme, django_assert_num_queries):
    import datetime as dt

    api_key = api_key_create(organisation=acme, name="ci").api_key
    moment = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
    api_key_touch(api_key=api_key, now=moment)
    with django_assert_num_queries(0):
        api_key_touch(api_key=api_key, now=moment + dt.timedelta(seconds=30))
    api_key_touch(api_key=api_key, now=moment + dt.timedelta(seconds=61))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == moment + dt.timedelta(seconds=61)
