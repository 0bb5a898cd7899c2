"""Registry API: thin adapters that fetch with the selectors and change through the services."""

from __future__ import annotations

from django.utils.http import quote_etag
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts import selectors as account_selectors
from accounts.models import Scope
from core.api import api_source, represented, validated
from core.exceptions import InvalidInput, NotFound
from core.http import etag_matches
from core.pagination import AssetPagination, VersionPagination
from registry import selectors, services
from registry.api import serializers as s
from registry.filters import AssetFilter, EvaluationFilter, VersionFilter
from registry.models import Asset, AssetKind, AssetVersion, Evaluation, Stage
from registry.permissions import Role, require
from registry.services import VersionRef


class KindView(generics.GenericAPIView):
    """A view mounted once per asset kind (models, prompts, datasets): `kind` comes from the URL conf."""

    kind: AssetKind = AssetKind.MODEL
    queryset = Asset.objects.none()  # for schema generation only; reads go through the selectors

    def asset(self):
        return selectors.asset_get_for_user(user=self.request.user, kind=self.kind, name=self.kwargs["name"])

    def version(self):
        return selectors.version_get(asset=self.asset(), number=self.kwargs["number"])


class VersionSchema(AutoSchema):
    """Documents the version request and response bodies of the kind the view is mounted for."""

    def get_request_serializer(self):
        return s.VERSION_IN[self.view.kind] if self.method == "POST" else s.VersionUpdateIn

    def get_response_serializers(self):
        out = s.VERSION_OUT[self.view.kind]
        if self.method == "GET" and "{number}" not in self.path:
            return out(many=True)
        if self.method == "POST":
            return {201: out}  # registering answers 201 Created
        return out


class AssetListView(KindView):
    serializer_class = s.AssetOut
    filterset_class = AssetFilter
    pagination_class = AssetPagination

    def get_queryset(self):
        return selectors.asset_list_for_user(user=self.request.user, kind=self.kind)

    @extend_schema(responses=s.AssetOut(many=True))
    def get(self, request, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.AssetOut(page, many=True).data)

    @extend_schema(request=s.AssetCreateIn, responses={201: s.AssetOut})
    def post(self, request, **kwargs):
        data = validated(s.AssetCreateIn, request)
        asset = services.asset_create(actor=request.user, source=api_source(request), kind=self.kind, **data)
        return Response(s.AssetOut(asset).data, status=201, headers={"Location": s.asset_path(asset)})


class AssetDetailView(KindView):
    serializer_class = s.AssetOut

    def get(self, request, **kwargs):
        return Response(s.AssetOut(self.asset()).data)

    @extend_schema(request=s.AssetUpdateIn, responses=s.AssetOut)
    def patch(self, request, **kwargs):
        asset = self.asset()
        data = validated(s.AssetUpdateIn, request)
        asset = services.asset_update(actor=request.user, source=api_source(request), asset=asset, **data)
        return Response(s.AssetOut(asset).data)


class AssetArchiveView(KindView):
    serializer_class = s.AssetOut

    @extend_schema(request=s.ArchiveIn, responses=s.AssetOut)
    def post(self, request, **kwargs):
        asset = self.asset()
        data = validated(s.ArchiveIn, request)
        asset = services.asset_archive(actor=request.user, source=api_source(request), asset=asset, **data)
        return Response(s.AssetOut(asset).data)


class VersionListView(KindView):
    queryset = AssetVersion.objects.none()
    filterset_class = VersionFilter
    schema = VersionSchema()
    pagination_class = VersionPagination

    def get_serializer_class(self):
        return s.VERSION_OUT[self.kind]

    def get(self, request, **kwargs):
        queryset = self.filter_queryset(selectors.version_list(asset=self.asset()))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.VERSION_OUT[self.kind](page, many=True).data)

    def post(self, request, **kwargs):
        try:
            data = validated(s.VERSION_IN[self.kind], request)
        except ValidationError:
            self.asset()  # an asset the caller may not see is not found, whatever the body
            raise
        lineage = [(ref.pop("relation"), VersionRef(**ref)) for ref in data.pop("lineage", [])]
        data["origin"] = data.pop("source", {})
        # The service finds the asset (NotFound as self.asset() would say) under its row lock.
        version = services.version_register_named(
            actor=request.user,
            source=api_source(request),
            kind=self.kind,
            name=self.kwargs["name"],
            data=data,
            lineage=lineage,
        )
        body = represented(s.VERSION_OUT[self.kind], version)
        return Response(body, status=201, headers={"Location": body["url"]})


class VersionDetailView(KindView):
    queryset = AssetVersion.objects.none()
    schema = VersionSchema()

    def get_serializer_class(self):
        return s.VERSION_OUT[self.kind]

    def get(self, request, **kwargs):
        return Response(s.VERSION_OUT[self.kind](self.version()).data)

    def patch(self, request, **kwargs):
        version = self.version()
        data = validated(s.VersionUpdateIn, request)
        version = services.version_update(
            actor=request.user, source=api_source(request), version=version, **data
        )
        return Response(s.VERSION_OUT[self.kind](version).data)


class EvaluationListView(KindView):
    serializer_class = s.EvaluationOut
    filterset_class = EvaluationFilter
    queryset = Evaluation.objects.none()

    @extend_schema(responses=s.EvaluationOut(many=True))
    def get(self, request, **kwargs):
        version = self.version()
        queryset = self.filter_queryset(
            selectors.evaluation_list_for_user(user=request.user, version=version)
        )
        page = self.paginate_queryset(queryset)
        for evaluation in page:
            if not evaluation.dataset_visible:  # never name a dataset the caller may not see
                evaluation.dataset_version = None
        return self.get_paginated_response(s.EvaluationOut(page, many=True).data)

    @extend_schema(request=s.EvaluationIn, responses={201: s.EvaluationOut})
    def post(self, request, **kwargs):
        version = self.version()
        data = validated(s.EvaluationIn, request)
        dataset = data.pop("dataset")
        evaluation = services.evaluation_add(
            actor=request.user,
            source=api_source(request),
            version=version,
            dataset=VersionRef(kind=AssetKind.DATASET, **dataset) if dataset else None,
            **data,
        )
        return Response(s.EvaluationOut(evaluation).data, status=201)


class LineageView(KindView):
    serializer_class = s.LineageOut
    pagination_class = None

    @extend_schema(parameters=[s.LineageQuery])
    def get(self, request, **kwargs):
        version = self.version()
        query = s.LineageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        direction, depth = query.validated_data["direction"], query.validated_data["depth"]
        edges = selectors.lineage_for_user(
            user=request.user, version=version, direction=direction, depth=depth
        )
        body = {
            "version": version,
            "direction": direction,
            "depth": depth,
            "edges": [
                {
                    "parent": edge.parent,
                    "child": edge.child,
                    "relation": edge.relation,
                    "depth": hops,
                }
                for edge, hops in edges
            ],
        }
        return Response(s.LineageOut(body).data)

    @extend_schema(request=s.LineageIn, responses={201: s.LineageEdgeOut})
    def post(self, request, **kwargs):
        version = self.version()
        data = validated(s.LineageIn, request)
        relation = data.pop("relation")
        edge = services.lineage_add(
            actor=request.user,
            source=api_source(request),
            child=version,
            parent_ref=VersionRef(**data),
            relation=relation,
        )
        return Response(
            s.LineageEdgeOut(
                {"parent": edge.parent, "child": edge.child, "relation": edge.relation, "depth": 1}
            ).data,
            status=201,
        )


def _pointer_body(stage: Stage, pointer) -> dict:
    version = pointer.version if pointer else None
    return {
        "stage": stage.name,
        "protected": stage.protected,
        "version": version.number if version else None,
        "digest": version.digest if version else None,
        "uri": version.uri if version else None,
        "updated_by": pointer.updated_by.username if pointer and pointer.updated_by else None,
        "updated_at": pointer.updated_at if pointer else None,
    }


class AssetStageListView(KindView):
    serializer_class = s.StagePointerOut
    pagination_class = None

    @extend_schema(responses=s.StagePointerOut(many=True))
    def get(self, request, **kwargs):
        rows = selectors.stage_pointer_list(asset=self.asset())
        return Response(
            s.StagePointerOut([_pointer_body(row["stage"], row["pointer"]) for row in rows], many=True).data
        )


class AssetStageDetailView(KindView):
    serializer_class = s.StagePointerOut

    @extend_schema(
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False)],
        responses={200: s.StagePointerOut, 304: OpenApiResponse(description="Not modified")},
    )
    def get(self, request, **kwargs):
        """The version in this stage: one indexed query. Answers an ETag; If-None-Match gives 304."""
        pointer = selectors.stage_pointer_resolve_for_user(
            user=request.user, kind=self.kind, name=kwargs["name"], stage=kwargs["stage"]
        )
        if pointer is None:
            # Either the asset or the stage does not exist, or nothing is in the stage yet.
            self.asset()
            selectors.stage_get(name=kwargs["stage"])
            raise NotFound(
                f"No version of {self.kind}/{kwargs['name']} is in {kwargs['stage']}.",
                type="stage-empty",
            )
        etag = quote_etag(f"{pointer['version_id']}-{pointer['updated_at'].timestamp():.6f}")
        if etag_matches(request, etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        body = {
            "stage": pointer["stage__name"],
            "protected": pointer["stage__protected"],
            "version": pointer["version__number"],
            "digest": pointer["version__digest"],
            "uri": pointer["version__uri"],
            "updated_by": pointer["updated_by__username"],
            "updated_at": pointer["updated_at"],
        }
        return Response(body, headers={"ETag": etag})

    @extend_schema(request=s.StageSetIn, responses=s.StagePointerOut)
    def put(self, request, **kwargs):
        """Set an unprotected stage directly. A protected stage answers 409 (needs a promotion)."""
        asset = self.asset()
        stage = selectors.stage_get(name=kwargs["stage"])
        data = validated(s.StageSetIn, request)
        version = selectors.version_list(asset=asset).filter(number=data["version"]).first()
        if version is None:
            raise InvalidInput.field("version", f"{asset} has no version {data['version']}")
        pointer = services.stage_set(
            actor=request.user,
            source=api_source(request),
            asset=asset,
            stage=stage,
            version=version,
            reason=data["reason"],
        )
        return Response(_pointer_body(stage, pointer))


class StageListView(generics.GenericAPIView):
    serializer_class = s.StageOut
    pagination_class = None
    queryset = Stage.objects.none()

    @extend_schema(responses=s.StageOut(many=True))
    def get(self, request):
        return Response(s.StageOut(Stage.objects.all(), many=True).data)


class AssetGrantListView(KindView):
    """Who holds which role on the asset (managers, admins, auditors); grant a role (managers, admins)."""

    serializer_class = s.GrantOut
    pagination_class = None
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.GrantOut(many=True))
    def get(self, request, **kwargs):
        rows = selectors.grant_list_for_user(user=request.user, asset=self.asset())
        return Response(s.GrantOut(rows, many=True).data)

    @extend_schema(request=s.GrantIn, responses={201: s.GrantOut})
    def post(self, request, **kwargs):
        asset = self.asset()
        data = validated(s.GrantIn, request)
        # The right to grant before the lookup, so that a refusal never tells whether the principal exists.
        require(request.user, asset, Role.MANAGE)
        principal = account_selectors.principal_get(
            principal_type=data["principal_type"], name=data["principal"]
        )
        services.grant_add(
            actor=request.user,
            source=api_source(request),
            asset=asset,
            principal=principal,
            role=data["role"],
        )
        body = {**data, "service_account": getattr(principal, "is_service_account", False)}
        return Response(s.GrantOut(body).data, status=201)


class AssetGrantDetailView(KindView):
    serializer_class = s.GrantOut
    token_scope = Scope.MANAGE

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, principal_type: str, principal: str, role: str, **kwargs):
        asset = self.asset()
        if role not in Role.values:
            raise InvalidInput.field("role", f"must be one of {', '.join(Role.values)}")
        require(request.user, asset, Role.MANAGE)  # before the principal is looked up, as for a grant
        holder = account_selectors.principal_get(principal_type=principal_type, name=principal)
        services.grant_remove(
            actor=request.user, source=api_source(request), asset=asset, principal=holder, role=Role(role)
        )
        return Response(status=204)
