"""
The parity suite: the official providers' own unit tests, run against our drop-ins.

``python -m tests.parity.run`` (``make test-parity``) downloads the sdists of the provider versions
installed in the running venv, extracts their ``tests/`` into ``build/parity/<leg>/upstream``, and runs
the test classes that exercise an operator we replace, with the official class swapped for ours while
each test module imports. A test that fails must be listed by name under "What differs" in the
operator's docs page; any other failure fails the run. Nothing from upstream is committed here.
"""
