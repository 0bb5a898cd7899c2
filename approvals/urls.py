"""Server-rendered pages of the approvals app: the reviewer inbox (the home page) and the promotion page."""

from django.urls import path

from approvals import views

app_name = "approvals"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("promotions/new/<str:kind>/<str:name>/", views.promotion_new, name="promotion-new"),
    path("promotions/<int:pk>/", views.promotion_detail, name="promotion"),
    path("promotions/<int:pk>/approve", views.promotion_approve, name="approve"),
    path("promotions/<int:pk>/reject", views.promotion_reject, name="reject"),
    path("promotions/<int:pk>/cancel", views.promotion_cancel, name="cancel"),
    path("promotions/<int:pk>/apply", views.promotion_apply, name="apply"),
]
