"""The queries of ``POST /api/v1/ingest/jobs`` do not grow with the number of items: a batch of
1,000 jobs costs what a batch of one costs, whether its jobs are created, updated or unchanged."""

import json

import pytest
from django.db import connection

from accounts.services import service_key_create

INGEST = "/api/v1/ingest/jobs"


@pytest.fixture(autouse=True)
def _clock(march_2025):
    """The current month is 2025-03."""


@pytest.fixture
def post(client, db):
    secret = service_key_create(name="platform").plaintext

    def send(items: list[dict]) -> tuple[dict, list[str]]:
        # The statements as sent (prepared ones included, whose text the debug log cannot show).
        statements: list[str] = []

        def record(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            response = client.post(
                INGEST,
                json.dumps({"jobs": items}),
                content_type="application/json",
                headers={"Authorization": f"Bearer {secret}"},
            )
        assert response.status_code == 200, response.content
        return response.json(), statements

    return send


def _items(count: int, *, prefix: str, status: str = "completed", org_ids=("org_acme",)) -> list[dict]:
    """``count`` jobs spread over the given organisations, two months and both kinds of source."""
    return [
        {
            "org_id": org_ids[index % len(org_ids)],
            "external_id": f"{prefix}-{index}",
            "api_key": "some api key" if index % 2 else None,
            "created_at": f"2025-0{1 + index % 2}-{1 + index % 28:02d}T10:{index % 60:02d}:00Z",
            "language": ["Hindi", "Tamil", "Telugu"][index % 3],
            "audio_duration_seconds": 60 + index,
            "status": status,
            "has_transcript": True,
            "has_lrc": bool(index % 3),
            "transcription_tokens": index,
            "note_tokens": 2 * index,
        }
        for index in range(count)
    ]


def _organisations(name: str) -> tuple[str, str]:
    """Two new organisations, each with the key "some api key" the items name."""
    from accounts.services import api_key_create, organisation_create

    org_ids = (f"org_{name}a", f"org_{name}b")
    for org_id in org_ids:
        api_key_create(organisation=organisation_create(name=org_id, org_id=org_id), name="some api key")
    return org_ids


def test_the_queries_of_a_batch_do_not_grow_with_its_items(post):
    post(_items(1, prefix="warm-up", org_ids=_organisations("warm")))  # the key's last use, once a minute
    counts = {}
    for size in (1, 100, 1000):
        # Each size writes two organisations of its own, so every batch meets the same state.
        org_ids = _organisations(f"size{size}")
        report, created = post(_items(size, prefix=f"n{size}", org_ids=org_ids))
        assert report["created"] == size
        report, updated = post(_items(size, prefix=f"n{size}", org_ids=org_ids, status="failed"))
        assert report["updated"] == size
        report, unchanged = post(_items(size, prefix=f"n{size}", org_ids=org_ids, status="failed"))
        assert report["unchanged"] == size
        counts[size] = {"created": len(created), "updated": len(updated), "unchanged": len(unchanged)}
    assert counts[1] == counts[100] == counts[1000], counts
    # Unchanged items write nothing: the key, its scope, the directory, the lock and the stored
    # jobs (with the transaction's statements).
    assert counts[1000]["unchanged"] <= 8, counts
    assert not [sql for sql in unchanged if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
