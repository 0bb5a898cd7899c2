"""Accounts API: who am I, service accounts, tokens, team members, global roles and account flags."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts import federation, selectors, services
from accounts.api import serializers as s
from accounts.models import ApiToken, Scope, TrustPolicy, User
from accounts.permissions import require_admin
from core.api import api_source, validated


class MeView(generics.GenericAPIView):
    serializer_class = s.MeOut
    pagination_class = None

    def get(self, request):
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response(s.MeOut(request.user, context={"token": token}).data)


class ServiceAccountListView(generics.GenericAPIView):
    serializer_class = s.ServiceAccountOut
    queryset = User.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.ServiceAccountOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.service_account_list_for_user(user=request.user))
        return self.get_paginated_response(s.ServiceAccountOut(page, many=True).data)

    @extend_schema(request=s.ServiceAccountIn, responses={201: s.ServiceAccountOut})
    def post(self, request):
        data = validated(s.ServiceAccountIn, request)
        require_admin(request.user)  # before the team is looked up, so a refusal tells nothing about it
        if data["team"] is not None:
            data["team"] = selectors.team_get(name=data["team"])
        account = services.service_account_create(actor=request.user, source=api_source(request), **data)
        return Response(s.ServiceAccountOut(account).data, status=201)


class TokenListView(generics.GenericAPIView):
    serializer_class = s.TokenOut
    queryset = ApiToken.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.TokenOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.token_list_for_user(user=request.user))
        return self.get_paginated_response(s.TokenOut(page, many=True).data)

    @extend_schema(request=s.TokenIn, responses={201: s.TokenCreatedOut})
    def post(self, request):
        data = validated(s.TokenIn, request)
        account = selectors.token_account_get(user=request.user, name=data.pop("account"))
        record, token = services.token_create(
            actor=request.user, source=api_source(request), account=account, **data
        )
        record.token = token
        return Response(s.TokenCreatedOut(record).data, status=201)


class TokenRevokeView(generics.GenericAPIView):
    serializer_class = s.TokenOut
    queryset = ApiToken.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(request=None, responses=s.TokenOut)
    def post(self, request, pk: int):
        token = selectors.token_get_for_user(user=request.user, pk=pk)
        token = services.token_revoke(actor=request.user, source=api_source(request), token=token)
        return Response(s.TokenOut(token).data)


def _user_body(account: User) -> dict:
    teams = sorted(account.groups.values_list("name", flat=True))
    return {
        "username": account.username,
        "is_service_account": account.is_service_account,
        **selectors.account_roles(account),
        "teams": teams,
    }


class TeamMemberListView(generics.GenericAPIView):
    """The members of a team (admins, auditors); add one (admins)."""

    serializer_class = s.TeamMemberOut
    queryset = User.objects.none()
    pagination_class = None
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.TeamMemberOut(many=True))
    def get(self, request, team: str):
        team = selectors.team_get_for_user(user=request.user, name=team)
        return Response(s.TeamMemberOut(selectors.team_member_list(team=team), many=True).data)

    @extend_schema(request=s.TeamMemberIn, responses={201: s.TeamMemberOut})
    def post(self, request, team: str):
        team = selectors.team_get_for_user(user=request.user, name=team)
        data = validated(s.TeamMemberIn, request)
        # The right to change before the lookup, so that a refusal never tells whether the account exists.
        require_admin(request.user)
        member = selectors.account_get(name=data["user"], field="user")
        services.team_member_add(actor=request.user, source=api_source(request), team=team, user=member)
        return Response(s.TeamMemberOut(member).data, status=201)


class TeamMemberDetailView(generics.GenericAPIView):
    serializer_class = s.TeamMemberOut
    queryset = User.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, team: str, user: str):
        require_admin(request.user)
        team = selectors.team_get_for_user(user=request.user, name=team)
        member = selectors.account_get_for_user(user=request.user, name=user)
        services.team_member_remove(actor=request.user, source=api_source(request), team=team, user=member)
        return Response(status=204)


class UserDetailView(generics.GenericAPIView):
    """An account's global role and flags (admins, auditors); change them (admins)."""

    serializer_class = s.UserOut
    queryset = User.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.UserOut)
    def get(self, request, username: str):
        account = selectors.account_get_for_user(user=request.user, name=username)
        return Response(s.UserOut(_user_body(account)).data)

    @extend_schema(request=s.UserIn, responses=s.UserOut)
    def patch(self, request, username: str):
        data = validated(s.UserIn, request)
        require_admin(request.user)
        account = selectors.account_get_for_user(user=request.user, name=username)
        account = services.user_update(actor=request.user, source=api_source(request), user=account, **data)
        return Response(s.UserOut(_user_body(account)).data)


def _policy_fields(request, data: dict) -> dict:
    """The input with the service account looked up by name (after the caller is known to be an admin)."""
    require_admin(request.user)
    if "account" in data:
        data["account"] = selectors.account_get(name=data["account"])
    return data


class TrustPolicyListView(generics.GenericAPIView):
    """Trust policies: which CI jobs' OIDC ID tokens are exchanged for tokens of which service account."""

    serializer_class = s.TrustPolicyOut
    queryset = TrustPolicy.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.TrustPolicyOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.trust_policy_list_for_user(user=request.user))
        return self.get_paginated_response(s.TrustPolicyOut(page, many=True).data)

    @extend_schema(request=s.TrustPolicyIn, responses={201: s.TrustPolicyOut})
    def post(self, request):
        data = _policy_fields(request, dict(validated(s.TrustPolicyIn, request)))
        policy = federation.trust_policy_create(actor=request.user, source=api_source(request), **data)
        return Response(
            s.TrustPolicyOut(policy).data,
            status=201,
            headers={"Location": f"/api/v1/trust-policies/{policy.pk}"},
        )


class TrustPolicyDetailView(generics.GenericAPIView):
    serializer_class = s.TrustPolicyOut
    queryset = TrustPolicy.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.TrustPolicyOut)
    def get(self, request, pk: int):
        return Response(s.TrustPolicyOut(selectors.trust_policy_get_for_user(user=request.user, pk=pk)).data)

    @extend_schema(request=s.TrustPolicyUpdateIn, responses=s.TrustPolicyOut)
    def patch(self, request, pk: int):
        policy = selectors.trust_policy_get_for_user(user=request.user, pk=pk)
        data = _policy_fields(request, dict(validated(s.TrustPolicyUpdateIn, request)))
        policy = federation.trust_policy_update(
            actor=request.user, source=api_source(request), policy=policy, **data
        )
        return Response(s.TrustPolicyOut(policy).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        policy = selectors.trust_policy_get_for_user(user=request.user, pk=pk)
        federation.trust_policy_delete(actor=request.user, source=api_source(request), policy=policy)
        return Response(status=204)


class OidcTokenExchangeView(generics.GenericAPIView):
    """Exchange a CI job's OIDC ID token for a short-lived registry token (no other credential needed)."""

    serializer_class = s.ExchangedTokenOut
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.IdTokenIn, responses={201: s.ExchangedTokenOut}, auth=[])
    def post(self, request):
        data = validated(s.IdTokenIn, request)
        record, token = federation.token_exchange(source=api_source(request), id_token=data["token"])
        record.token = token
        return Response(s.ExchangedTokenOut(record).data, status=201, headers={"Cache-Control": "no-store"})
