"""
Every Airflow and official-provider version branch of this provider, in one place.

* :mod:`.version_compat`: flags only (``AIRFLOW_V_3_0_PLUS``, ...) and the classes whose import path
  moved between Airflow lines (``BaseOperator``, ``Context``, the exceptions), as the official
  providers keep them.
* :mod:`.airflow`: behaviour shims, one function per difference, each naming the Airflow versions
  each branch covers. Dropping a version is deleting its branches there.
* :mod:`.databricks`: the same for generations of ``apache-airflow-providers-databricks``.

Nothing outside this package compares versions or probes an official class for a private method.
"""
