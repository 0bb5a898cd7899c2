"""Registry routes, mounted once per asset kind: /api/v1/models, /api/v1/prompts, /api/v1/datasets."""

from django.urls import path

from registry.api import views
from registry.api.serializers import PLURAL

urlpatterns = [path("stages", views.StageListView.as_view(), name="stage-list")]

for kind, plural in PLURAL.items():
    base = f"{plural}/<str:name>"
    version = f"{base}/versions/<int:number>"
    urlpatterns += [
        path(plural, views.AssetListView.as_view(kind=kind), name=f"{kind}-list"),
        path(base, views.AssetDetailView.as_view(kind=kind), name=f"{kind}-detail"),
        path(f"{base}/archive", views.AssetArchiveView.as_view(kind=kind), name=f"{kind}-archive"),
        path(
            f"{base}/versions",
            views.VersionListView.as_view(kind=kind),
            name=f"{kind}-version-list",
        ),
        path(version, views.VersionDetailView.as_view(kind=kind), name=f"{kind}-version-detail"),
        path(
            f"{version}/evaluations",
            views.EvaluationListView.as_view(kind=kind),
            name=f"{kind}-evaluation-list",
        ),
        path(f"{version}/lineage", views.LineageView.as_view(kind=kind), name=f"{kind}-lineage"),
        path(f"{base}/stages", views.AssetStageListView.as_view(kind=kind), name=f"{kind}-stage-list"),
        path(f"{base}/permissions", views.AssetGrantListView.as_view(kind=kind), name=f"{kind}-grant-list"),
        path(
            f"{base}/permissions/<str:principal_type>/<str:principal>/<str:role>",
            views.AssetGrantDetailView.as_view(kind=kind),
            name=f"{kind}-grant-detail",
        ),
        path(
            f"{base}/stages/<str:stage>",
            views.AssetStageDetailView.as_view(kind=kind),
            name=f"{kind}-stage-detail",
        ),
    ]
