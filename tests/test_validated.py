"""The API's input serializers are reused, one instance per thread and class (core.api.validated), and the
version answer is turned by a bound serializer kept for it (core.api.represented): both give exactly what a
new serializer gives, error bodies included, whatever came before."""

import threading

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

import accounts.api.serializers
import approvals.api.serializers
import registry.api.serializers
import webhooks.api.serializers
from core import api
from core.api import StrictInput, problem_exception_handler, represented, validated
from registry.api.serializers import VERSION_OUT
from registry.models import AssetKind
from tests.factories import AssetFactory, ServiceAccountFactory, VersionFactory

MODULES = [accounts.api.serializers, approvals.api.serializers, registry.api.serializers]
MODULES.append(webhooks.api.serializers)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


INPUTS = sorted(
    {c for c in _subclasses(StrictInput) if c.__module__ in {m.__name__ for m in MODULES}}, key=str
)

EXAMPLES = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Body:
    """What validated reads of a request."""

    def __init__(self, data):
        self.data = data


def answer(result) -> tuple:
    """A validation's outcome as the API shows it: the data, or the problem body of its 400."""
    if isinstance(result, ValidationError):
        return ("400", problem_exception_handler(result, {}).data)
    return ("ok", list(result.items()))


def fresh(serializer_class, data):
    """What validation gave before: a new serializer for every body."""
    serializer = serializer_class(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except ValidationError as exc:
        return answer(exc)
    return answer(serializer.validated_data)


def reused(serializer_class, data):
    try:
        return answer(validated(serializer_class, Body(data)))
    except ValidationError as exc:
        return answer(exc)


def test_every_input_serializer_of_the_api_is_covered():
    assert len(INPUTS) >= 25
    assert registry.api.serializers.ModelVersionIn in INPUTS


texts = st.sampled_from(
    [
        *["", " ", "x", "model", "fraud", "production", "sha256:" + "a" * 64, "https://ci.example/run/1"],
        *["0123abc", "\x00", "a" * 120, "contribute", "user", "*", "version.created", "model/fraud", "read"],
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**53 + 1) | st.floats(allow_nan=True) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def bodies(serializer_class):
    names = [*sorted(serializer_class().fields), "nope"]
    keys = st.sampled_from(names)
    return st.one_of(
        st.dictionaries(keys, json_values, max_size=len(names)),
        json_values,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("serializer_class", INPUTS, ids=lambda cls: cls.__name__)
def test_a_reused_serializer_answers_as_a_new_one(serializer_class):
    @EXAMPLES
    @given(st.lists(bodies(serializer_class), min_size=1, max_size=4))
    def check(sequence):
        for data in sequence:  # one after the other on the same instance: nothing carries over
            assert reused(serializer_class, data) == fresh(serializer_class, data)

    check()


# Bodies near the edges of the quick path (core.api): strings with whitespace around them, blank, at and past
# their length limits, not ASCII, with NUL; lists of them; JSON objects within and beyond the JSON limits.
edge_strings = st.sampled_from(
    [
        *["", " ", "x", " x", "x ", "\tx", "x\n", "é", "x\x00", "x\x1f", "\u2028", "sha256:" + "a" * 64],
        *["a" * 7, "a" * 50, "a" * 51, "a" * 71, "a" * 72, "a" * 100, "a" * 101, "a" * 300, "a" * 301],
        *["0123abc", "https://ci.example/run/1", "model", "dataset", "derived_from", "contribute"],
    ]
)
edge_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) - 1, 2**53 + 1)
    | st.sampled_from([2**53, -(2**53), 0.5, float("nan"), float("inf")])
    | edge_strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(edge_strings, inner, max_size=3),
    max_leaves=8,
)


def near_valid(serializer_class):
    names = sorted(serializer_class().fields)
    members = st.one_of(edge_strings, st.lists(edge_strings, max_size=3), edge_values)
    return st.dictionaries(st.sampled_from([*names, "nope"]), members, max_size=len(names))


@pytest.mark.django_db
@pytest.mark.parametrize("serializer_class", INPUTS, ids=lambda cls: cls.__name__)
def test_the_quick_path_answers_as_the_serializer(serializer_class):
    @EXAMPLES
    @given(st.lists(near_valid(serializer_class), min_size=1, max_size=4))
    def check(sequence):
        for data in sequence:
            assert reused(serializer_class, data) == fresh(serializer_class, data)

    check()


def _quick_fields():
    for serializer_class in INPUTS:
        plan = api._quick_plan(serializer_class())
        for name, field, check in plan or []:
            if check is not None:
                yield pytest.param(field, check, id=f"{serializer_class.__name__}.{name}")


def _edge_members(field):
    limits = {getattr(field, "max_length", None), getattr(field, "min_length", None)}
    child = getattr(field, "child", None)
    limits |= {getattr(child, "max_length", None), getattr(child, "min_length", None)}
    sizes = {0, 1, 2} | {n + d for n in limits - {None} for d in (-1, 0, 1) if n + d >= 0}
    strings = ["a" * n for n in sorted(sizes)]
    strings += [" a", "a ", " ", "\t", "é", "a\x00", "\ud800", "1", "a\u2028"]
    members = [*strings, None, True, 5, 2.5, {}, {"a": 1}, {"a": 2**60}, {"a": float("nan")}, {1: "a"}]
    members += [[], [*strings[:3]], ["a", ""], ["a", None], ["a", 5], [[]], "x" * 20000]
    return members


@pytest.mark.parametrize(("field", "check"), list(_quick_fields()))
def test_each_quick_check_takes_only_what_its_field_takes_unchanged(field, check):
    for value in _edge_members(field):
        quick = check(value)
        try:
            expected = field.run_validation(value)
        except (ValidationError, DjangoValidationError):
            assert quick is api.NOT_QUICK, value
            continue
        assert quick is api.NOT_QUICK or (quick == expected and type(quick) is type(expected)), value


def test_the_quick_checks_cover_the_registration_fields():
    covered = {param.id for param in _quick_fields()}
    assert {"ModelVersionIn.digest", "ModelVersionIn.metrics", "ModelVersionIn.tags"} <= covered


@pytest.mark.parametrize(
    "data",
    [
        {"digest": "sha256:" + "a" * 64, "metrics": {"auc": 0.9}},
        {"digest": "sha256:" + "a" * 64, "tags": ["a", "b"], "uri": "", "metadata": {"k": [1, None]}},
        {"digest": "sha256:" + "a" * 64, "framework": "sklearn", "model_card": "", "description": "d"},
    ],
)
def test_a_plain_registration_body_takes_the_quick_path(monkeypatch, data):
    serializer_class = registry.api.serializers.ModelVersionIn
    expected = fresh(serializer_class, data)
    monkeypatch.setattr(serializer_class, "is_valid", lambda *a, **k: pytest.fail("ran the serializer"))
    assert reused(serializer_class, data) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"digest": " sha256:" + "a" * 64},  # trimmed by the serializer
        {"digest": "sha256:" + "a" * 64, "source": {"commit": "abc1234"}},  # a nested serializer
        {"digest": "sha256:" + "a" * 64, "metrics": {"n": 2**60}},  # beyond the JSON limits: refused
        {"digest": "sha256:" + "a" * 64, "nope": 1},  # not a field: refused
        {"metrics": {}},  # the digest is required: refused
    ],
)
def test_anything_else_goes_to_the_serializer(monkeypatch, data):
    serializer_class = registry.api.serializers.ModelVersionIn
    expected, runs = fresh(serializer_class, data), []
    real = serializer_class.is_valid
    monkeypatch.setattr(serializer_class, "is_valid", lambda *a, **k: runs.append(1) or real(*a, **k))
    assert reused(serializer_class, data) == expected
    assert runs == [1]


GOOD_VERSION = {
    AssetKind.MODEL: {"digest": "sha256:" + "a" * 64, "metrics": {"auc": 0.9}},
    AssetKind.PROMPT: {"template": "Hello {name}", "model_config": {"model": "m"}},
    AssetKind.DATASET: {"digest": "sha256:" + "b" * 64, "uri": "s3://d", "row_count": 3},
}


@pytest.mark.parametrize("kind", list(AssetKind))
def test_a_good_body_after_a_bad_one_and_the_other_way(kind):
    serializer_class = registry.api.serializers.VERSION_IN[kind]
    bad = [{"digest": 5, "nope": 1, "source": {"commit": "XYZ"}}, [], {"lineage": [{"kind": "?"}]}]
    for data in [GOOD_VERSION[kind], *bad, GOOD_VERSION[kind], {**GOOD_VERSION[kind], "tags": ["a"]}]:
        assert reused(serializer_class, data) == fresh(serializer_class, data)
    assert reused(serializer_class, GOOD_VERSION[kind])[0] == "ok"


def test_each_thread_validates_with_its_own_instance():
    serializer_class = registry.api.serializers.ModelVersionIn
    validated(serializer_class, Body(GOOD_VERSION[AssetKind.MODEL]))
    mine = api._input_serializers.__dict__[serializer_class]
    seen = []

    def other():
        validated(serializer_class, Body(GOOD_VERSION[AssetKind.MODEL]))
        seen.append(api._input_serializers.__dict__[serializer_class])

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen and seen[0] is not mine


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(AssetKind))
def test_the_version_answer_is_the_serializers(kind):
    asset = AssetFactory(kind=kind)
    author = ServiceAccountFactory()
    versions = [
        VersionFactory(asset=asset, created_by=author, tags=["b", "a"], origin={"commit": "abc1234"}),
        VersionFactory(asset=asset, created_by=None, metadata={"k": [1, {"x": None}]}, row_count=None),
        VersionFactory(asset=asset, template="Hi {who}", variables=["who"], model_config={"t": 1}),
    ]
    for version in versions:
        expected = VERSION_OUT[kind](version).data
        got = represented(VERSION_OUT[kind], version)
        assert list(got.items()) == list(expected.items())
        assert JSONRenderer().render(got) == JSONRenderer().render(expected)


@pytest.mark.django_db
def test_other_shapes_are_answered_as_their_serializers_answer():
    from registry.api.serializers import AssetOut, StagePointerOut, VersionRefOut

    asset = AssetFactory(kind=AssetKind.MODEL, tags=["x"])
    version = VersionFactory(asset=asset, created_by=None)
    pointer = {"stage": "staging", "protected": False, "version": 3, "digest": None, "uri": "s3://x"}
    pointer |= {"updated_by": None, "updated_at": version.created_at}
    for serializer_class, instance in [
        (AssetOut, asset),  # no team, no creator: defaults and nulls
        (VersionRefOut, version),
        (StagePointerOut, pointer),  # a mapping: the fields' own lookups
        (StagePointerOut, {"stage": "staging"}),  # missing keys
    ]:
        try:
            expected = serializer_class(instance).data
        except Exception as exc:
            with pytest.raises(type(exc)):
                represented(serializer_class, instance)
            continue
        assert list(represented(serializer_class, instance).items()) == list(expected.items())
