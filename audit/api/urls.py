from django.urls import path

from audit.api import views

urlpatterns = [
    path("audit/events", views.EventListView.as_view(), name="audit-event-list"),
    path("audit/checkpoint", views.CheckpointView.as_view(), name="audit-checkpoint"),
    path("audit/checkpoints", views.CheckpointListView.as_view(), name="audit-checkpoint-list"),
    path("audit/proof/inclusion", views.InclusionProofView.as_view(), name="audit-proof-inclusion"),
    path("audit/proof/consistency", views.ConsistencyProofView.as_view(), name="audit-proof-consistency"),
    path("audit/export", views.ExportView.as_view(), name="audit-export"),
]
