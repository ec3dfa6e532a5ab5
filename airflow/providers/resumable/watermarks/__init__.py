"""
Watermarks: where the last successful run of a task stopped (``rules.py``) and where that is kept (``stores.py``).

Above ``state/`` (they use its codec, backends and the running try) and below ``mixins/``, whose
``WatermarkMixin`` is the public way in.
"""
