from django.urls import path

from accounts.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("service-accounts", views.ServiceAccountListView.as_view(), name="service-account-list"),
    path("tokens", views.TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>/revoke", views.TokenRevokeView.as_view(), name="token-revoke"),
]
