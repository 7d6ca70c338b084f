"""Fixtures shared by the portal page tests; test modules import the ones they use."""

import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Personas are created with passwords; a cheap hasher keeps each test to milliseconds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
