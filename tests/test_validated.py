"""The API's input serializers are reused, one instance per thread and class (core.api.validated), and the
version answer is turned by a bound serializer kept for it (core.api.represented): both give exactly what a
new serializer gives, error bodies included, whatever came before."""

import threading

import pytest
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
