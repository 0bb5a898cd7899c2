"""API shapes for promotions and policies."""

from django.contrib.auth.models import Group
from rest_framework import serializers

from approvals.payloads import PromotionOut  # noqa: F401  (the shape the API answers with)
from registry.api.serializers import JSONObjectField, StrictInput, whole_number
from registry.models import AssetKind


class CiIn(serializers.Serializer):
    """CI context of the request: commit, ref, run URL, and any other string facts the pipeline adds."""

    commit = serializers.RegexField(r"^[0-9a-f]{7,64}$", required=False)
    ref = serializers.CharField(required=False, max_length=300)
    run_url = serializers.URLField(required=False, max_length=1000)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(data, dict):
            return value
        extra = {key: item for key, item in data.items() if key not in self.fields}
        for key, item in extra.items():
            if not isinstance(item, str | int | bool) or len(str(item)) > 500 or len(key) > 50:
                raise serializers.ValidationError({key: ["must be a short string, number or boolean"]})
        if len(extra) > 20:
            raise serializers.ValidationError("at most 20 extra CI fields")
        return {**value, **extra}


class PromotionIn(StrictInput):
    kind = serializers.ChoiceField(choices=AssetKind.choices)
    name = serializers.CharField(max_length=100)
    version = whole_number(min_value=1)
    stage = serializers.CharField(max_length=50)
    justification = serializers.CharField(max_length=5000)
    rollback = serializers.BooleanField(default=False)
    ci = CiIn(required=False, default=dict)
    callback_url = serializers.URLField(
        required=False,
        allow_blank=True,
        default="",
        max_length=1000,
        help_text=(
            "http(s) URL the registry POSTs the request to, signed, when it is final. Its host must resolve "
            "to public addresses only, unless the server allows it (docs/ci.md, Where callbacks may go)."
        ),
    )


class CommentIn(StrictInput):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ReasonIn(StrictInput):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class PolicyIn(StrictInput):
    kind = serializers.ChoiceField(choices=AssetKind.choices, required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    stage = serializers.CharField(max_length=50)
    required_approvals = whole_number(default=1)
    reviewer_teams = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), many=True, required=False, default=list
    )
    allow_author_approval = serializers.BooleanField(default=False)
    gates = serializers.ListField(child=JSONObjectField(), required=False, default=list)
    expiry_hours = whole_number(default=7 * 24)
    apply_on_approval = serializers.BooleanField(default=True)


class PolicyUpdateIn(StrictInput):
    immutable_message = "cannot be changed; make a new policy for another scope or stage"
    required_approvals = whole_number(required=False)
    reviewer_teams = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), many=True, required=False
    )
    allow_author_approval = serializers.BooleanField(required=False)
    gates = serializers.ListField(child=JSONObjectField(), required=False)
    expiry_hours = whole_number(required=False)
    apply_on_approval = serializers.BooleanField(required=False)


class PolicyOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    kind = serializers.CharField()
    name = serializers.CharField(source="asset.name", allow_null=True, default=None)
    scope = serializers.CharField()
    stage = serializers.CharField(source="stage.name")
    required_approvals = serializers.IntegerField()
    reviewer_teams = serializers.SerializerMethodField()
    allow_author_approval = serializers.BooleanField()
    gates = serializers.ListField(child=serializers.DictField())
    expiry_hours = serializers.IntegerField()
    apply_on_approval = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_url(self, policy) -> str:
        return f"/api/v1/policies/{policy.pk}"

    def get_reviewer_teams(self, policy) -> list[str]:
        return sorted(team.name for team in policy.reviewer_teams.all())
