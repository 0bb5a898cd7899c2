"""Server-rendered pages of the approvals app: the reviewer inbox (the home page), the promotions list and
page, and the policy pages."""

from django.urls import path

from approvals import policy_views, views

app_name = "approvals"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("promotions/", views.promotion_list, name="promotions"),
    path("promotions/new/<str:kind>/<str:name>/", views.promotion_new, name="promotion-new"),
    path("promotions/<int:pk>/", views.promotion_detail, name="promotion"),
    path("promotions/<int:pk>/approve", views.promotion_approve, name="approve"),
    path("promotions/<int:pk>/reject", views.promotion_reject, name="reject"),
    path("promotions/<int:pk>/cancel", views.promotion_cancel, name="cancel"),
    path("promotions/<int:pk>/apply", views.promotion_apply, name="apply"),
    path("policies/", policy_views.policy_list, name="policies"),
    path("policies/new", policy_views.policy_create, name="policy-create"),
    path("policies/<int:pk>/", policy_views.policy_detail, name="policy"),
    path("policies/<int:pk>/edit", policy_views.policy_edit, name="policy-edit"),
    path("policies/<int:pk>/delete", policy_views.policy_delete, name="policy-delete"),
]
