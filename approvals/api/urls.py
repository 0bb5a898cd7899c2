from django.urls import path

from approvals.api import views

urlpatterns = [
    path("promotions", views.PromotionListView.as_view(), name="promotion-list"),
    path("promotions/<int:pk>", views.PromotionDetailView.as_view(), name="promotion-detail"),
    path(
        "promotions/<int:pk>/approve",
        views.ReviewActionView.as_view(action="approve"),
        name="promotion-approve",
    ),
    path(
        "promotions/<int:pk>/reject", views.ReviewActionView.as_view(action="reject"), name="promotion-reject"
    ),
    path(
        "promotions/<int:pk>/cancel",
        views.RequesterActionView.as_view(action="cancel"),
        name="promotion-cancel",
    ),
    path(
        "promotions/<int:pk>/apply", views.RequesterActionView.as_view(action="apply"), name="promotion-apply"
    ),
    path("policies", views.PolicyListView.as_view(), name="policy-list"),
    path("policies/<int:pk>", views.PolicyDetailView.as_view(), name="policy-detail"),
]
