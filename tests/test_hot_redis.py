"""The hot path's Redis commands: sent on a connection each thread keeps, scripts by EVALSHA with
an EVAL when Redis does not know them, a failed connection replaced."""

import uuid

import pytest
import redis

from portal import hot_redis


@pytest.fixture
def hot():
    if hot_redis.redis_client() is None:
        pytest.skip("the cache is not Redis (set CACHE_URL=redis://…)")
    return hot_redis


def test_a_script_unknown_to_redis_runs_by_eval_then_by_evalsha(hot):
    # A script nobody ran before (its comment is unique), so EVALSHA first meets NOSCRIPT.
    source = f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    key = f"test:hot:{uuid.uuid4().hex}"

    assert hot.run_script(source, keys=[key], args=[2]) == 2
    assert hot.execute("SCRIPT", "EXISTS", hot._sha1(source)) == [1]
    assert hot.run_script(source, keys=[key], args=[3]) == 5
    assert hot.execute("GET", key) == b"5"
    hot.execute("DEL", key)


def test_an_error_answer_raises_and_keeps_the_connection(hot):
    key = f"test:hot:{uuid.uuid4().hex}"
    hot.execute("SET", key, "text")
    connection = hot._held.connection

    with pytest.raises(redis.ResponseError):
        hot.execute("INCR", key)

    assert hot._held.connection is connection
    assert hot.execute("DEL", key) == 1


def test_a_broken_connection_fails_one_command_and_the_next_connects_again(hot):
    hot.execute("PING")
    broken = hot._held.connection
    broken._sock.close()  # as if Redis had gone away under it

    with pytest.raises(redis.ConnectionError):
        hot.execute("PING")
    assert hot.execute("PING") == b"PONG"
    assert hot._held.connection is broken  # the same object, connected afresh


def test_a_forked_process_opens_its_own_connection(hot, monkeypatch):
    hot.execute("PING")
    inherited = hot._held.connection
    monkeypatch.setattr(inherited, "pid", inherited.pid - 1)  # as seen from a forked child

    assert hot.execute("PING") == b"PONG"
    assert hot._held.connection is not inherited
