"""API shapes for the registry. Serializers validate shape only; the rules live in services."""

from __future__ import annotations

from django.contrib.auth.models import Group
from rest_framework import serializers
from rest_framework.fields import _UnvalidatedField

from core.api import NOT_QUICK, StrictInput
from core.parsers import ASCII_DIGITS, MAX_SAFE_INT, json_problem
from registry.models import AssetKind, Relation, RiskTier
from registry.permissions import Role
from registry.selectors import MAX_LINEAGE_DEPTH

PLURAL = {AssetKind.MODEL: "models", AssetKind.PROMPT: "prompts", AssetKind.DATASET: "datasets"}


def asset_path(asset) -> str:
    return f"/api/v1/{PLURAL[asset.kind]}/{asset.name}"


class JSONObjectField(serializers.DictField):
    """A JSON object within the registry's limits (core/parsers.py: integers within +/-(2^53 - 1), finite
    numbers, bounded depth, valid strings), checked here too, so that they hold whatever parsed the body."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        found = json_problem(value)
        if found:
            path, message = found
            raise serializers.ValidationError({path: [message]} if path else [message])
        return value

    def quick_value(self, value):
        """What run_validation returns for a JSON object it takes (a copy with the same members), for the
        quick path of core.api.validated; NOT_QUICK for anything else (the serializer decides)."""
        if type(value) is not dict or (not value and not self.allow_empty) or self.validators:
            return NOT_QUICK
        if type(self.child) is not _UnvalidatedField or self.child.validators:
            return NOT_QUICK
        for key in value:
            if type(key) is not str:
                return NOT_QUICK
        return NOT_QUICK if json_problem(value) else dict(value)


def whole_number(**kwargs) -> serializers.IntegerField:
    """An integer input within +/-(2^53 - 1) unless narrower bounds are given."""
    return serializers.IntegerField(**{"min_value": -MAX_SAFE_INT, "max_value": MAX_SAFE_INT, **kwargs})


class QueryInteger(serializers.IntegerField):
    """A whole number in a query parameter: ASCII digits only (not a superscript or full-width digit, not
    ' 5' or '5.0', which IntegerField would take)."""

    def to_internal_value(self, data):
        digits = isinstance(data, str) and ASCII_DIGITS.fullmatch(data)
        if not digits or len(data) > len(str(MAX_SAFE_INT)):
            self.fail("invalid")
        return super().to_internal_value(data)


# Assets -------------------------------------------------------------------------------------------


class AssetOut(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    team = serializers.CharField(source="team.name", allow_null=True, default=None)
    risk_tier = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    latest_version = serializers.IntegerField(source="latest_version_number")
    archived = serializers.BooleanField(source="is_archived")
    archived_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, asset) -> str:
        return asset_path(asset)


class AssetCreateIn(StrictInput):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    team = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Group.objects.all(),
        required=False,
        allow_null=True,
        default=None,
    )
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, default=RiskTier.MEDIUM)
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class AssetUpdateIn(StrictInput):
    immutable_message = "cannot be changed; editable fields: description, team, risk_tier, tags"
    description = serializers.CharField(required=False, allow_blank=True)
    team = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), required=False, allow_null=True
    )
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


class ArchiveIn(StrictInput):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


# Versions -----------------------------------------------------------------------------------------


class VersionRefIn(StrictInput):
    kind = serializers.ChoiceField(choices=AssetKind.choices)
    name = serializers.CharField(max_length=100)
    version = whole_number(min_value=1)


class LineageIn(VersionRefIn):
    relation = serializers.ChoiceField(choices=Relation.choices)


class SourceIn(StrictInput):
    """Where a version was produced: the commit, the ref, the CI run."""

    commit = serializers.RegexField(r"^[0-9a-f]{7,64}$", required=False)
    ref = serializers.CharField(required=False, max_length=300)
    run_url = serializers.URLField(required=False, max_length=1000)
    repository = serializers.CharField(required=False, max_length=300)
    workflow = serializers.CharField(required=False, max_length=300)
    actor = serializers.CharField(required=False, max_length=300)


class VersionInBase(StrictInput):
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    uri = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")
    metadata = JSONObjectField(required=False, default=dict)
    source = SourceIn(required=False, default=dict)
    lineage = LineageIn(many=True, required=False, default=list)


class ModelVersionIn(VersionInBase):
    digest = serializers.CharField(max_length=71)
    framework = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    metrics = JSONObjectField(required=False, default=dict)
    params = JSONObjectField(required=False, default=dict)
    signature = JSONObjectField(required=False, default=dict)
    model_card = serializers.CharField(required=False, allow_blank=True, default="")


class PromptVersionIn(VersionInBase):
    template = serializers.CharField(trim_whitespace=False)
    model_config = JSONObjectField(required=False, default=dict)
    commit_message = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    variables = serializers.ListField(child=serializers.CharField(), required=False)
    digest = serializers.CharField(
        required=False, max_length=71, help_text="Optional: checked against the computed digest."
    )


class DatasetVersionIn(VersionInBase):
    digest = serializers.CharField(max_length=71)
    row_count = whole_number(required=False, allow_null=True, min_value=0, default=None)
    schema = JSONObjectField(required=False, default=dict)


class VersionUpdateIn(StrictInput):
    immutable_message = "is immutable; only description and tags can change"
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


class VersionOutBase(serializers.Serializer):
    kind = serializers.CharField(source="asset.kind")
    name = serializers.CharField(source="asset.name")
    version = serializers.IntegerField(source="number")
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    digest = serializers.CharField()
    uri = serializers.CharField()
    metadata = serializers.DictField()
    source = serializers.DictField(source="origin")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, version) -> str:
        return f"{asset_path(version.asset)}/versions/{version.number}"


class ModelVersionOut(VersionOutBase):
    framework = serializers.CharField()
    metrics = serializers.DictField()
    params = serializers.DictField()
    signature = serializers.DictField()
    model_card = serializers.CharField()


class PromptVersionOut(VersionOutBase):
    template = serializers.CharField()
    variables = serializers.ListField(child=serializers.CharField())
    model_config = serializers.DictField()
    commit_message = serializers.CharField()


class DatasetVersionOut(VersionOutBase):
    row_count = serializers.IntegerField(allow_null=True)
    schema = serializers.DictField()


VERSION_IN = {
    AssetKind.MODEL: ModelVersionIn,
    AssetKind.PROMPT: PromptVersionIn,
    AssetKind.DATASET: DatasetVersionIn,
}
VERSION_OUT = {
    AssetKind.MODEL: ModelVersionOut,
    AssetKind.PROMPT: PromptVersionOut,
    AssetKind.DATASET: DatasetVersionOut,
}


class VersionRefOut(serializers.Serializer):
    kind = serializers.CharField(source="asset.kind")
    name = serializers.CharField(source="asset.name")
    version = serializers.IntegerField(source="number")
    digest = serializers.CharField()


# Evaluations and lineage --------------------------------------------------------------------------


class DatasetRefIn(StrictInput):
    name = serializers.CharField(max_length=100)
    version = whole_number(min_value=1)


class EvaluationIn(StrictInput):
    name = serializers.CharField(max_length=100)
    metrics = JSONObjectField()
    dataset = DatasetRefIn(required=False, allow_null=True, default=None)
    details = JSONObjectField(required=False, default=dict)


class EvaluationOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    metrics = serializers.DictField()
    dataset = VersionRefOut(source="dataset_version", allow_null=True)
    details = serializers.DictField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class LineageEdgeOut(serializers.Serializer):
    parent = VersionRefOut()
    child = VersionRefOut()
    relation = serializers.CharField()
    depth = serializers.IntegerField()


class LineageOut(serializers.Serializer):
    version = VersionRefOut()
    direction = serializers.CharField()
    depth = serializers.IntegerField()
    edges = LineageEdgeOut(many=True)


class LineageQuery(serializers.Serializer):
    direction = serializers.ChoiceField(choices=["upstream", "downstream"], default="upstream")
    depth = QueryInteger(min_value=1, max_value=MAX_LINEAGE_DEPTH, default=10)


# Stages -------------------------------------------------------------------------------------------


class StageOut(serializers.Serializer):
    name = serializers.CharField()
    order = serializers.IntegerField()
    protected = serializers.BooleanField()
    description = serializers.CharField()


class StagePointerOut(serializers.Serializer):
    stage = serializers.CharField()
    protected = serializers.BooleanField()
    version = serializers.IntegerField(allow_null=True)
    digest = serializers.CharField(allow_null=True)
    uri = serializers.CharField(allow_null=True)
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class StageSetIn(StrictInput):
    version = whole_number(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class GrantIn(StrictInput):
    principal_type = serializers.ChoiceField(choices=["user", "team"])
    principal = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class GrantOut(serializers.Serializer):
    principal_type = serializers.CharField()
    principal = serializers.CharField()
    service_account = serializers.BooleanField()
    role = serializers.CharField()
