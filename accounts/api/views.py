"""Accounts API: who am I, service accounts, tokens."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api import serializers as s
from accounts.models import ApiToken, Scope, User
from core.api import api_source, validated
from registry.permissions import require_admin


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
