"""Engine settings the suite's deployment imports by path (``[database] sql_alchemy_connect_args``)."""

from __future__ import annotations

#: SQLite's busy timeout, in seconds: a writer waits this long for the lock instead of failing at once
#: with "database is locked" while the scheduler, the API server and the tasks write concurrently.
SQLITE_CONNECT_ARGS = {"timeout": 30}

#: The API server's own, much shorter busy timeout. On SQLite the Airflow 3.3 API server can deadlock
#: itself: an action-logged public API call (``clearTaskInstances``, a task instance ``PATCH``) commits
#: its audit-log row from an async dependency, on the event loop, while an Execution API request
#: (a heartbeat, a task state store write) has flushed its write and waits for that same loop to run
#: its session's commit. Nothing moves until the event loop's write gives up, so the busy timeout is
#: how long the whole API server (every heartbeat of every task) stands still. A short one turns the
#: stall into one 500 answer, which the person's call and the Task SDK's client both retry.
SQLITE_CONNECT_ARGS_API_SERVER = {"timeout": 3}
