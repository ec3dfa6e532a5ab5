"""Engine settings the suite's deployment imports by path (``[database] sql_alchemy_connect_args``)."""

from __future__ import annotations

#: SQLite's busy timeout, in seconds: a writer waits this long for the lock instead of failing at once
#: with "database is locked" while the scheduler, the API server and the tasks write concurrently. The
#: scheduler, DAG processor and triggerer exit on that error, so they wait longest.
SQLITE_CONNECT_ARGS = {"timeout": 120}
#: The API server answers a request that waited this long with a 500, which frees whatever it holds;
#: its clients (the tasks' Execution API calls, the suite's REST calls) retry.
SQLITE_API_CONNECT_ARGS = {"timeout": 30}
