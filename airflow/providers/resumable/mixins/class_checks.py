"""
Checks of how an operator class uses this provider's mixins, run when the class is defined.

A mistake in a class statement (the mixin listed after ``BaseOperator``, ``checkpoint_model = dict``)
used to surface far from its cause: a ``TypeError`` from ``object.__init__`` when the operator was
created, or an ``AttributeError`` on the *retry*, after try 1 had done its work. Checked here, it fails
the DAG file's import, naming the class and the attribute, before any task runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from airflow.providers.resumable.compat.version_compat import BaseOperator


def require_mixin_before_operator(cls: type, mixin: type) -> None:
    """
    Refuse ``class W(BaseOperator, Mixin)``: the mixin must come first in the method resolution order.

    With ``BaseOperator`` first, its ``__init__`` and ``execute`` shadow the mixin's, so the mixin's
    arguments reach ``object.__init__`` and its ``execute`` never runs.
    """
    mro = cls.__mro__
    if BaseOperator not in mro or mixin not in mro:
        return
    operator_at = mro.index(BaseOperator)
    # The class the user listed (WatermarkMixin rather than the StatefulOperatorMixin it extends).
    listed = next((base for base in mro[1:] if issubclass(base, mixin)), mixin)
    if mro.index(listed) < operator_at:
        return
    bases = ", ".join(base.__name__ for base in cls.__bases__)
    raise TypeError(
        f"{cls.__name__} lists {listed.__name__} after BaseOperator (class {cls.__name__}({bases})), so "
        f"BaseOperator's __init__ and execute hide the mixin's: list the mixin before BaseOperator, "
        f"class {cls.__name__}({listed.__name__}, <your operator base>)."
    )


def check_model(owner: str, attribute: str, model: Any) -> None:
    """
    Refuse a model that is not a pydantic model class (``dict``, an instance, a dataclass).

    ``attribute`` names where it was given (``checkpoint_model``, ``model=``); ``owner`` the class or
    task. None (plain JSON) is allowed.
    """
    if model is None or (isinstance(model, type) and issubclass(model, BaseModel)):
        return
    raise TypeError(
        f"{attribute} of {owner} must be a pydantic model class (a subclass of Checkpoint or BaseModel) or "
        f"None, got {model!r}: a retry reads the stored value back with {attribute}.model_validate(). Use "
        f"a Checkpoint subclass, or leave {attribute} unset to store plain JSON."
    )
