"""``airflow resumable state ...``: see, explain and delete what resumable operators stored."""
