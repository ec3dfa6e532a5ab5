"""``fail_on_tries``: its arguments, which call of which try it fails, and the patch it undoes."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.testing import InjectedFault, fail_on_tries
from airflow.providers.resumable.testing import faults as faults_module


class Sink:
    def __init__(self):
        self.written = []

    def write(self, item):
        self.written.append(item)
        return item

    @staticmethod
    def helper():
        return 1


class SubSink(Sink):
    pass


@pytest.fixture
def try_number(monkeypatch):
    """Stands in for the running task instance's try number."""
    current = {"n": 1}
    monkeypatch.setattr(faults_module, "_current_try", lambda: ("d", "r", "t", -1, current["n"]))
    return current


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"tries": {0}}, ValueError, r"tries must be try numbers >= 1 \(the first try is 1\), got \['0'\]"),
        ({"tries": set()}, ValueError, "tries must be try numbers >= 1"),
        ({"tries": {True}}, ValueError, "tries must be try numbers"),
        ({"tries": {1}, "at_call": 0}, ValueError, "at_call must be a call number >= 1 .*got 0"),
        ({"tries": {1}, "attribute": "nope"}, AttributeError, "has no attribute 'nope' to patch"),
        ({"tries": {1}, "attribute": "helper"}, TypeError, "Sink.helper is a static or class method"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    attribute = kwargs.pop("attribute", "write")
    with pytest.raises(error, match=message), fail_on_tries(Sink, attribute, **kwargs):
        pass


def test_fails_only_the_chosen_call_of_the_chosen_try(try_number):
    sink = Sink()
    with fail_on_tries(Sink, "write", tries={2}, at_call=2) as fault:
        sink.write("a")  # try 1: never fails
        sink.write("b")
        try_number["n"] = 2
        sink.write("c")
        with pytest.raises(InjectedFault, match=r"Sink.write failed on call 2 of try 2"):
            sink.write("d")
        sink.write("e")  # later calls of the try go through
    assert sink.written == ["a", "b", "c", "e"]
    assert fault.fired == [2]


def test_after_runs_the_call_then_raises_the_given_error(try_number):
    sink = Sink()
    lost = lambda n: ConnectionError(f"lost on {n}")  # noqa: E731
    with (
        fail_on_tries(sink, "write", tries={1}, after=True, error=lost) as fault,
        pytest.raises(ConnectionError, match="lost on 1"),
    ):
        sink.write("sent")
    assert sink.written == ["sent"], "the call reached the sink before the response was lost"
    assert fault.fired == [1]


def test_the_original_method_comes_back(try_number):
    own = Sink.__dict__["write"]
    assert "write" not in SubSink.__dict__
    with fail_on_tries(Sink, "write", tries={1}), pytest.raises(InjectedFault):
        Sink().write(1)
    with fail_on_tries(SubSink, "write", tries={1}), pytest.raises(InjectedFault):
        SubSink().write(1)
    sink = Sink()
    with fail_on_tries(sink, "write", tries={1}):
        pass
    assert Sink.__dict__["write"] is own
    assert "write" not in SubSink.__dict__
    assert "write" not in vars(sink)
    assert SubSink().write(2) == 2


def test_a_call_outside_a_task_instance_says_so():
    with fail_on_tries(Sink, "write", tries={1}), pytest.raises(RuntimeError, match="outside a running task instance"):
        Sink().write(1)
