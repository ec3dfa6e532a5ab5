"""Our stand-in for the helpers of Airflow's ``tests_common`` that the parity run needs (see ../README.md)."""
