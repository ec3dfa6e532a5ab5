"""Engine settings the suite's deployment imports by path (``[database] sql_alchemy_connect_args``)."""

from __future__ import annotations

#: SQLite's busy timeout, in seconds: a writer waits this long for the lock instead of failing at once
#: with "database is locked" while the scheduler, the API server and the tasks write concurrently.
SQLITE_CONNECT_ARGS = {"timeout": 30}
