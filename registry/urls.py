"""Server-rendered pages of the registry app, mounted at /registry/."""

from django.urls import path, register_converter

from registry import views
from registry.models import AssetKind


class AssetKindConverter:
    """model | prompt | dataset, as an AssetKind; any other word is not a registry page (404)."""

    regex = "|".join(AssetKind.values)

    def to_python(self, value: str) -> AssetKind:
        return AssetKind(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(AssetKindConverter, "asset_kind")

app_name = "registry"
urlpatterns = [
    path("", views.asset_list, name="asset-list"),
    path("<asset_kind:kind>/<str:name>/", views.asset_detail, name="asset-detail"),
    path("<asset_kind:kind>/<str:name>/edit", views.asset_edit, name="asset-edit"),
    path("<asset_kind:kind>/<str:name>/archive", views.asset_archive, name="asset-archive"),
    path("<asset_kind:kind>/<str:name>/versions/<int:number>/", views.version_detail, name="version-detail"),
    path(
        "<asset_kind:kind>/<str:name>/versions/<int:number>/stage",
        views.version_stage_set,
        name="version-stage-set",
    ),
    path("<asset_kind:kind>/<str:name>/compare/", views.version_compare, name="version-compare"),
]
