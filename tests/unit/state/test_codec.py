"""The one codec: every stored document decodes through ``decode`` into one located error shape."""

from __future__ import annotations

import json

import pytest

from airflow.providers.resumable.mixins.stateful import CheckpointSchemaError
from airflow.providers.resumable.state.backends import InMemoryStateStore
from airflow.providers.resumable.state.base import CorruptStateError, NamespacedStateStore
from airflow.providers.resumable.state.codec import (
    CheckpointEnvelope,
    FinishedMarker,
    JobDecisionEntry,
    JobRecord,
    VariableDocument,
    located,
    safe_name,
)
from airflow.providers.resumable.watermarks.rules import WatermarkDocument, Window

WHERE = "Airflow Variable 'x'"


def parse(kind: str, raw):
    return {
        "job record": lambda: JobRecord.parse("job", raw, store=None),
        "checkpoint": lambda: CheckpointEnvelope.parse(raw, WHERE),
        "finished marker": lambda: FinishedMarker.parse(raw, WHERE),
        "watermark": lambda: WatermarkDocument.parse(raw, WHERE),
        "watermark window": lambda: Window.parse(raw, WHERE),
    }[kind]()


VALID = {
    "job record": {"kind": "resumable-job", "seq": 1, "token": "rsm-abc"},
    "checkpoint": {"kind": "resumable-checkpoint", "batches_done": 3, "data": {"page": 4}},
    "finished marker": {"kind": "resumable-finished", "try_number": 2},
    "watermark": {"kind": "resumable-watermark", "value": 5, "version": 1},
    "watermark window": {"kind": "resumable-watermark-window", "base": 5, "since": 5},
}
CORRUPT = {
    "job record": ({"kind": "resumable-job", "seq": "x", "token": "rsm-abc"}, "seq"),
    "checkpoint": ({"kind": "resumable-checkpoint", "batches_done": -1}, "batches_done"),
    "finished marker": ({"kind": "resumable-finished", "try_number": -1}, "try_number"),
    "watermark": ({"kind": "resumable-watermark", "version": -1}, "version"),
    "watermark window": ({"kind": "resumable-watermark-window", "base_version": -2}, "base_version"),
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_valid_document_decodes_and_none_is_absent(kind):
    assert parse(kind, VALID[kind]) is not None
    assert parse(kind, None) is None


@pytest.mark.parametrize("kind", sorted(VALID))
def test_another_kind_is_named_with_the_kind_it_should_have(kind):
    raw = {**VALID[kind], "kind": "something-else"}
    with pytest.raises(CorruptStateError) as err:
        parse(kind, raw)
    text = str(err.value)
    assert "unknown kind 'something-else'" in text
    assert f"not a {kind} of this provider" in text


@pytest.mark.parametrize("kind", sorted(set(VALID) - {"job record"}))
def test_a_value_that_is_no_document_is_named_as_it_is(kind):
    with pytest.raises(
        CorruptStateError, match=rf"^The stored value '2026-01-01' is not a {kind} of this provider.*Where: {WHERE}\.$"
    ):
        parse(kind, "2026-01-01")


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_a_corrupt_document_names_the_location_the_field_and_the_fix(kind):
    raw, field = CORRUPT[kind]
    with pytest.raises(CorruptStateError) as err:
        parse(kind, raw)
    text = str(err.value)
    assert text.startswith(f"The stored {kind} is corrupt ({field}"), "the diagnosis comes first"
    fix = text.lower().index("delete" if "delete" in text.lower() else "reset")
    assert text.rindex("Where: ") > fix, "the location comes last"
    assert err.value.diagnosis is not None
    assert err.value.diagnosis.startswith(f"The stored {kind} is corrupt ({field}")
    assert any(word in text for word in ("Delete", "delete", "reset")), "says what a person must do"


def test_a_bare_id_is_adopted_as_a_legacy_job_record():
    record = JobRecord.parse("job", "run-42")
    assert record is not None
    assert (record.legacy, record.external_id, record.token) == (True, "run-42", None)
    with pytest.raises(CorruptStateError, match="neither a job record of this provider nor a bare job id"):
        JobRecord.parse("job", [1, 2])
    with pytest.raises(CorruptStateError, match="needs a token"):
        JobRecord.parse("job", {"kind": "resumable-job", "seq": 1})


def test_a_job_record_of_0_1_reads_as_no_resume_yet_and_new_ones_are_version_2():
    # What 0.1/0.2 wrote: version 1, no resume fields.
    old = {"kind": "resumable-job", "version": 1, "seq": 2, "token": "rsm-abc", "external_id": 1001}
    record = JobRecord.parse("job", old)
    assert record is not None
    assert (record.version, record.resumes, record.resume_pending, record.resume_detail) == (1, 0, False, None)
    assert JobRecord(seq=1, token="rsm-abc").dump()["version"] == 2
    pending = JobRecord.parse("job", {**old, "resume_token": "rsm-res", "resume_of": 1001, "resumes": 1})
    assert pending is not None
    assert pending.resume_pending
    with pytest.raises(CorruptStateError, match="resumes"):
        JobRecord.parse("job", {**old, "resumes": -1})
    with pytest.raises(CorruptStateError, match="resume_token"):
        JobRecord.parse("job", {**old, "resume_token": "has spaces"})


def test_a_record_without_history_or_url_reads_as_none_yet_and_one_with_them_round_trips():
    # What 0.1 and 0.2 before the history wrote: neither field; still version 2.
    old = {"kind": "resumable-job", "version": 2, "seq": 1, "token": "rsm-abc", "external_id": 1001}
    record = JobRecord.parse("job", old)
    assert record is not None
    assert (record.history, record.url) == ([], None)
    entry = {"try_number": 2, "decision": "reattach", "at": "2026-12-05T06:00:00+00:00", "external_id": 1001}
    stored = {**old, "history": [entry], "url": "https://adb-1.test/#job/0/run/1001"}
    again = JobRecord.parse("job", json.loads(json.dumps(JobRecord.parse("job", stored).dump())))
    assert again is not None
    assert again.history == [JobDecisionEntry(**entry)]
    assert again.url == "https://adb-1.test/#job/0/run/1001"
    assert again.dump() == {**JobRecord.parse("job", old).dump(), "history": [entry], "url": stored["url"]}
    # A reader from before these fields ignores them, as this one ignores what a newer one adds.
    assert JobRecord.model_config["extra"] == "ignore"
    # A decision this provider does not know (a newer writer's) still reads; a broken entry is named.
    newer = {**entry, "decision": "some_future_kind", "why": "ignored"}
    assert JobRecord.parse("job", {**old, "history": [newer]}).history[0].decision == "some_future_kind"
    with pytest.raises(CorruptStateError, match=r"history\.0\.try_number"):
        JobRecord.parse("job", {**old, "history": [{**entry, "try_number": -1}]})


def test_the_checkpoint_error_can_be_the_mixins_own():
    with pytest.raises(CheckpointSchemaError, match="not a checkpoint of this provider"):
        CheckpointEnvelope.parse({"kind": "checkpoint"}, WHERE, error=CheckpointSchemaError)


def test_the_variable_document_round_trips_and_names_what_it_lacks():
    document = VariableDocument(scope={"dag_id": "d"}, life={"try_number": 1}, values={"k": {"a": None}})
    again = VariableDocument.parse(document.dump(), WHERE)
    assert again == document
    assert json.loads(document.dump())["values"] == {"k": {"a": None}}, "None inside a value is kept"
    with pytest.raises(CorruptStateError, match=rf"^The stored Variable is not JSON.*Where: {WHERE}"):
        VariableDocument.parse("{", WHERE)
    with pytest.raises(CorruptStateError, match=rf"^The stored Variable lacks values.*Where: {WHERE}"):
        VariableDocument.parse('{"scope": {}}', WHERE)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("my dag/v2", 80, "my-dag-v2"), ("a.b_c-d", 80, "a.b_c-d"), ("x" * 10, 4, "xxxx"), ("ünï", 9, "-n-")],
)
def test_safe_name(text, limit, expected):
    assert safe_name(text, limit) == expected


def test_located_sees_through_namespaces_to_the_backend():
    inner = InMemoryStateStore()
    assert located(inner, "k") == "key 'k' of the in-memory store InMemoryStateStore"
    assert located(NamespacedStateStore(inner, "ns"), "k") == "key 'ns/k' of the in-memory store InMemoryStateStore"


class TestInputFingerprint:
    """What a map index's state is kept for: its expanded arguments, serialised the same in every process."""

    def test_insensitive_to_key_order_and_sensitive_to_values(self):
        from airflow.providers.resumable.state.codec import input_fingerprint

        assert input_fingerprint({"a": 1, "b": [1, 2]}) == input_fingerprint({"b": [1, 2], "a": 1})
        assert input_fingerprint({"a": 1}) != input_fingerprint({"a": 2})
        assert input_fingerprint({"spec": ("x", "y")}) == input_fingerprint({"spec": ["x", "y"]})

    def test_datetimes_and_sets_have_a_stable_form(self):
        from datetime import UTC, datetime

        from airflow.providers.resumable.state.codec import input_fingerprint

        when = datetime(2026, 1, 1, tzinfo=UTC)
        assert input_fingerprint({"at": when, "ids": {3, 1, 2}}) == input_fingerprint({"at": when, "ids": {1, 2, 3}})

    def test_an_object_known_only_by_its_repr_is_not_fingerprinted(self):
        from airflow.providers.resumable.state.codec import input_fingerprint

        assert input_fingerprint({"client": object()}) is None, "a repr with an address differs in every try"

    def test_a_hand_edited_fingerprint_is_named_as_bad_state(self):
        from airflow.providers.resumable.state.base import CorruptStateError
        from airflow.providers.resumable.state.codec import MappedInput

        with pytest.raises(CorruptStateError, match="mapped input fingerprint"):
            MappedInput.parse({"kind": "resumable-mapped-input", "map_index": -1}, "somewhere")
