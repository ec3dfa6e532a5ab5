"""Mistakes in an operator's class statement fail when the class is defined, naming the fix."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from airflow.providers.resumable.mixins import Checkpoint, ResumableJobMixin, StatefulOperatorMixin, WatermarkMixin
from airflow.providers.resumable.version_compat import BaseOperator
from tests.unit.mixins.test_taskflow import handle


class Cursor(Checkpoint):
    schema_version: ClassVar[int] = 1
    page: int = 0


@pytest.mark.parametrize("mixin", [StatefulOperatorMixin, ResumableJobMixin, WatermarkMixin])
def test_a_mixin_listed_after_base_operator_is_refused_naming_the_order(mixin):
    with pytest.raises(
        TypeError, match=rf"W lists {mixin.__name__} after BaseOperator.*list the mixin before BaseOperator"
    ):

        class W(BaseOperator, mixin):  # type: ignore[misc]
            def execute(self, context: Any) -> None:
                pass


def test_a_subclass_of_a_well_ordered_operator_is_fine():
    class Copy(StatefulOperatorMixin, BaseOperator):
        checkpoint_model = Cursor

    class Subclass(Copy):
        pass

    assert Subclass(task_id="t", checkpoint_every=5).checkpoint_every == 5


@pytest.mark.parametrize("model", [dict, Cursor(page=1), "Cursor"])
def test_a_checkpoint_model_that_cannot_read_a_checkpoint_back_is_refused_at_class_definition(model):
    with pytest.raises(TypeError, match=r"checkpoint_model of Copy must be a pydantic model class"):

        class Copy(StatefulOperatorMixin, BaseOperator):
            checkpoint_model = model


def test_a_watermark_model_is_checked_the_same_way():
    with pytest.raises(TypeError, match=r"watermark_model of Changes must be a pydantic model class"):

        class Changes(WatermarkMixin, BaseOperator):
            watermark_model = dict


@pytest.mark.parametrize("model", [None, Cursor, BaseModel])
def test_pydantic_models_and_none_are_accepted(model):
    class Copy(StatefulOperatorMixin, BaseOperator):
        checkpoint_model = model

    assert Copy.checkpoint_model is model


def test_the_taskflow_model_argument_is_checked_on_the_first_try(memory_store):
    with pytest.raises(TypeError, match=r"model of task 'task' \(checkpoint 'pages'\) must be a pydantic model class"):
        handle().checkpoints("pages", model=dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model of task 'task' \(watermark None\) must be a pydantic model class"):
        handle().watermark(model=dict)  # type: ignore[arg-type]
