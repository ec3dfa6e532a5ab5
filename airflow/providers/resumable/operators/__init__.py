"""Drop-in resumable operators built on the official providers' operators and hooks."""
