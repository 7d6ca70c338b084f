"""Database helpers shared by the hot paths.

``prepared_cursor()``: Django binds parameters on the client, so PostgreSQL parses and plans every
statement afresh. For a short statement that costs several times its execution; the statements a
hot path runs at every request (a key lookup, an ingestion's lock, read and write) go through a
cursor whose statements psycopg prepares once per connection and then only executes.
"""

from functools import cache

from django.db import connection


@cache
def _prepared_cursor_class() -> type:
    """A psycopg cursor with server-side binding whose statements are always prepared."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

    return PreparedCursor


def prepared_cursor():
    """A cursor of the default connection whose statements are prepared (PostgreSQL), else a
    plain one. It comes from Django's own ``cursor()`` (error wrapping, query logging, time zone),
    made from a prepared-statement cursor class for this one call.

    Use it only for statements whose text is fixed (parameters vary, the SQL does not): psycopg
    keeps a bounded number of prepared statements per connection (``prepared_max``, 100 by
    default), and a text made per call would evict the others.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    raw_connection = connection.connection
    factory = raw_connection.cursor_factory
    raw_connection.cursor_factory = _prepared_cursor_class()
    try:
        return connection.cursor()
    finally:
        raw_connection.cursor_factory = factory
