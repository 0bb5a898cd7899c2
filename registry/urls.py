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
    path("<asset_kind:kind>/<str:name>/versions/<int:number>/", views.version_detail, name="version-detail"),
    path("<asset_kind:kind>/<str:name>/compare/", views.version_compare, name="version-compare"),
]
