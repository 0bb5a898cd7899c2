"""API shapes for accounts, tokens and grants."""

from rest_framework import serializers

from accounts.models import Scope, TrustProvider
from accounts.oidc import POLICY_SCOPES
from accounts.services import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS
from core.api import StrictInput


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    service_account = serializers.BooleanField(source="is_service_account")
    global_role = serializers.CharField()
    registry_admin = serializers.BooleanField(source="is_registry_admin")
    auditor = serializers.BooleanField(source="is_auditor")
    teams = serializers.SerializerMethodField()
    token_scopes = serializers.SerializerMethodField()

    def get_teams(self, user) -> list[str]:
        return sorted(group.name for group in user.groups.all())

    def get_token_scopes(self, user) -> list[str] | None:
        token = self.context.get("token")
        return token.scopes if token is not None else None


class ServiceAccountIn(StrictInput):
    name = serializers.CharField(max_length=150)
    # A name, looked up by the view once the caller is known to be an admin: the shape check must not tell
    # anyone else which teams exist.
    team = serializers.CharField(max_length=150, required=False, allow_null=True, default=None)


class ServiceAccountOut(serializers.Serializer):
    name = serializers.CharField(source="username")
    teams = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active")
    created_at = serializers.DateTimeField(source="date_joined")

    def get_teams(self, account) -> list[str]:
        return sorted(group.name for group in account.groups.all())


class TokenIn(StrictInput):
    account = serializers.CharField(max_length=150)
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), min_length=1)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=MAX_TOKEN_DAYS, default=DEFAULT_TOKEN_DAYS
    )


class TokenOut(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.CharField(source="account.username")
    name = serializers.CharField()
    prefix = serializers.SerializerMethodField()
    last4 = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_by = serializers.CharField(source="revoked_by.username", allow_null=True, default=None)

    def get_prefix(self, token) -> str:
        return f"{token.PREFIX}_{token.lookup}_"


class TokenCreatedOut(TokenOut):
    token = serializers.CharField(help_text="Shown once; only its hash is stored.")


class TeamMemberIn(StrictInput):
    user = serializers.CharField(max_length=150)


class TeamMemberOut(serializers.Serializer):
    user = serializers.CharField(source="username")
    service_account = serializers.BooleanField(source="is_service_account")
    active = serializers.BooleanField(source="is_active")


class UserIn(StrictInput):
    global_role = serializers.ChoiceField(choices=["admin", "auditor", "none"], required=False)
    is_active = serializers.BooleanField(required=False)
    is_superuser = serializers.BooleanField(required=False)
    is_staff = serializers.BooleanField(required=False)
    can_create_assets = serializers.BooleanField(
        required=False,
        help_text="The account's own registry.add_asset permission; admins create assets anyway.",
    )


class UserOut(serializers.Serializer):
    username = serializers.CharField()
    service_account = serializers.BooleanField(source="is_service_account")
    global_role = serializers.ChoiceField(choices=["admin", "auditor", "none"])
    is_active = serializers.BooleanField()
    is_superuser = serializers.BooleanField()
    is_staff = serializers.BooleanField()
    can_create_assets = serializers.BooleanField()
    teams = serializers.ListField(child=serializers.CharField())


class TrustPolicyIn(StrictInput):
    name = serializers.CharField(max_length=100)
    provider = serializers.ChoiceField(choices=TrustProvider.choices)
    issuer = serializers.CharField(
        max_length=300,
        required=False,
        default="",
        allow_blank=True,
        help_text="The `iss` of the ID tokens, exactly. Default: GitHub's or gitlab.com's issuer.",
    )
    audience = serializers.CharField(max_length=200, help_text="The `aud` the ID token must carry.")
    conditions = serializers.DictField(
        child=serializers.CharField(max_length=300),
        help_text="Claim name -> the exact value the ID token must carry (GitHub: repository or "
        "repository_id, repository_owner_id, ref, environment, job_workflow_ref; GitLab: project_path, ref, "
        'ref_protected ("true"/"false"), environment).',
    )
    account = serializers.CharField(max_length=150, help_text="The service account the job acts as.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=POLICY_SCOPES), min_length=1)
    token_lifetime_seconds = serializers.IntegerField(min_value=60, max_value=3600, default=900)
    enabled = serializers.BooleanField(default=True)


class TrustPolicyUpdateIn(TrustPolicyIn):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class TrustPolicyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    provider = serializers.CharField()
    issuer = serializers.CharField()
    audience = serializers.CharField()
    conditions = serializers.DictField(child=serializers.CharField())
    account = serializers.CharField(source="account.username")
    scopes = serializers.ListField(child=serializers.CharField())
    token_lifetime_seconds = serializers.IntegerField()
    enabled = serializers.BooleanField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class IdTokenIn(StrictInput):
    token = serializers.CharField(max_length=16384, help_text="The CI job's OIDC ID token (a JWT).")


class ExchangedTokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="The registry token: shown once, expires within the hour.")
    token_type = serializers.CharField(default="Bearer")
    account = serializers.CharField(source="account.username")
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()
    trust_policy = serializers.CharField(source="federation.trust_policy")
