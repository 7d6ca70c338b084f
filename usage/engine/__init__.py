"""The usage engine: keeps the derived job columns and the stored aggregates equal to the jobs.

- ``refresh``: stale marks, and resolving them after every write and before every read;
- ``recompute``: the recompute after writes and the nightly reconcile (``usage_recompute``);
- ``derive``: the derived job columns (tier of a rank, free flag) and the plan's tier ladder;
- ``aggregation``: the set-based SQL that groups jobs and diffs them with the stored rows;
- ``checksum``: the PostgreSQL checksum pass of the reconcile;
- ``locks``: leases that keep periodic work from overlapping.

The engine imports models, pure modules and the database only, never a face of the product
(``usage.api``, ``usage.pages``, ``usage.admin``); a test checks it.
"""
