"""The promotion API that CI calls, and the policy API that managers use."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.models import Scope
from approvals import selectors, services
from approvals.api import serializers as s
from approvals.filters import PromotionFilter
from approvals.models import Policy, PromotionRequest
from approvals.payloads import facts_payload, promotion_payload
from core.api import api_source, validated
from core.exceptions import DomainError, InvalidInput
from core.http import etag_matches
from registry import selectors as registry_selectors

IDEMPOTENCY_HEADER = [OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)]


class IdempotencyKeyMissing(DomainError):
    status = 400
    type = "idempotency-key-missing"
    title = "An Idempotency-Key header is required"


class PromotionListView(generics.GenericAPIView):
    serializer_class = s.PromotionOut
    filterset_class = PromotionFilter
    queryset = PromotionRequest.objects.none()
    token_scope = Scope.PROMOTE

    def get_queryset(self):
        return selectors.promotion_list_for_user(user=self.request.user)

    @extend_schema(responses=s.PromotionOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([promotion_payload(promotion) for promotion in page])

    @extend_schema(request=s.PromotionIn, responses={201: s.PromotionOut}, parameters=IDEMPOTENCY_HEADER)
    def post(self, request):
        """Request a promotion. A replay with the same Idempotency-Key and body returns the first answer."""
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise IdempotencyKeyMissing("Send an Idempotency-Key header (a UUID is a good choice).")
        if len(key) > 255 or not key.isprintable():
            raise InvalidInput.field("Idempotency-Key", "must be 1-255 printable characters")
        claim = services.IdempotencyClaim.for_body(key=key, body=request.data, render=promotion_payload)
        answer = services.kept_answer(account=request.user, claim=claim)
        if answer is None:
            answer = services.answer_once(
                account=request.user, claim=claim, act=lambda: self._request(request, claim)
            )
        headers = {"Location": f"/api/v1/promotions/{answer.promotion_id}"}
        if answer.replayed:
            headers = {"Idempotent-Replayed": "true", **headers}
        return Response(answer.body, status=answer.status, headers=headers)

    def _request(self, request, claim: services.IdempotencyClaim) -> PromotionRequest:
        data = validated(s.PromotionIn, request)
        asset = registry_selectors.asset_get_for_user(user=request.user, kind=data["kind"], name=data["name"])
        version = registry_selectors.version_find(asset=asset, number=data["version"])
        if version is None:
            raise InvalidInput.field("version", f"{asset} has no version {data['version']}")
        stage = registry_selectors.stage_get_or_invalid(name=data["stage"])
        return services.promotion_request(
            actor=request.user,
            source=api_source(request),
            asset=asset,
            version=version,
            stage=stage,
            justification=data["justification"],
            rollback=data["rollback"],
            ci=data["ci"],
            callback_url=data["callback_url"],
            idempotency=claim,
        )


class PromotionDetailView(generics.GenericAPIView):
    serializer_class = s.PromotionOut
    queryset = PromotionRequest.objects.none()

    @extend_schema(
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False)],
        responses={200: s.PromotionOut, 304: OpenApiResponse(description="Not modified")},
    )
    def get(self, request, pk: int):
        """Where the request stands. ETag/If-None-Match → 304; Retry-After while it is not final."""
        promotion = selectors.promotion_poll_for_user(user=request.user, pk=pk)
        etag = f'"promotion-{promotion.id}-{promotion.revision}"'
        headers = {"ETag": etag}
        if promotion.is_open:
            headers["Retry-After"] = str(settings.PROMOTION_POLL_SECONDS)
        if etag_matches(request, etag):
            return Response(status=304, headers=headers)
        return Response(facts_payload(promotion), headers=headers)


class PromotionActionView(generics.GenericAPIView):
    """approve / reject / cancel / apply: each answers with the request as it now stands."""

    serializer_class = s.PromotionOut
    queryset = PromotionRequest.objects.none()
    action: str = "approve"
    token_scope = Scope.PROMOTE

    def get_input_serializer(self):
        return s.CommentIn if self.action in ("approve", "reject") else s.ReasonIn

    def post(self, request, pk: int):
        source = api_source(request)
        promotion = selectors.promotion_get_for_user(user=request.user, pk=pk)
        data = validated(self.get_input_serializer(), request)
        if self.action == "approve":
            services.promotion_approve(actor=request.user, source=source, promotion_id=promotion.pk, **data)
        elif self.action == "reject":
            services.promotion_reject(actor=request.user, source=source, promotion_id=promotion.pk, **data)
        elif self.action == "cancel":
            services.promotion_cancel(actor=request.user, source=source, promotion_id=promotion.pk, **data)
        else:
            services.promotion_apply(actor=request.user, source=source, promotion_id=promotion.pk)
        promotion = selectors.promotion_get_for_user(user=request.user, pk=pk)
        return Response(promotion_payload(promotion))


class ReviewActionView(PromotionActionView):
    token_scope = Scope.REVIEW

    @extend_schema(request=s.CommentIn, responses=s.PromotionOut)
    def post(self, request, pk: int):
        return super().post(request, pk)


class RequesterActionView(PromotionActionView):
    @extend_schema(request=s.ReasonIn, responses=s.PromotionOut)
    def post(self, request, pk: int):
        return super().post(request, pk)


class PolicyListView(generics.GenericAPIView):
    serializer_class = s.PolicyOut
    queryset = Policy.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.PolicyOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.policy_list_for_user(user=request.user))
        return self.get_paginated_response(s.PolicyOut(page, many=True).data)

    @extend_schema(request=s.PolicyIn, responses={201: s.PolicyOut})
    def post(self, request):
        data = validated(s.PolicyIn, request)
        name, kind = data.pop("name"), data.pop("kind")
        asset = None
        if name:
            if not kind:
                raise InvalidInput.field("kind", "is required with name")
            asset = registry_selectors.asset_get_for_user(user=request.user, kind=kind, name=name)
        stage = registry_selectors.stage_get_or_invalid(name=data.pop("stage"))
        policy = services.policy_create(
            actor=request.user, source=api_source(request), stage=stage, asset=asset, kind=kind, **data
        )
        return Response(
            s.PolicyOut(policy).data, status=201, headers={"Location": f"/api/v1/policies/{policy.pk}"}
        )


class PolicyDetailView(generics.GenericAPIView):
    serializer_class = s.PolicyOut
    queryset = Policy.objects.none()
    token_scope = Scope.MANAGE

    def get(self, request, pk: int):
        return Response(s.PolicyOut(selectors.policy_get_for_user(user=request.user, pk=pk)).data)

    @extend_schema(request=s.PolicyUpdateIn, responses=s.PolicyOut)
    def patch(self, request, pk: int):
        policy = selectors.policy_get_for_user(user=request.user, pk=pk)
        data = validated(s.PolicyUpdateIn, request)
        policy = services.policy_update(actor=request.user, source=api_source(request), policy=policy, **data)
        return Response(s.PolicyOut(selectors.policy_get_for_user(user=request.user, pk=policy.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        policy = selectors.policy_get_for_user(user=request.user, pk=pk)
        services.policy_delete(actor=request.user, source=api_source(request), policy=policy)
        return Response(status=204)
