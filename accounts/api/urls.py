from django.urls import path

from accounts.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("service-accounts", views.ServiceAccountListView.as_view(), name="service-account-list"),
    path("tokens", views.TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>/revoke", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("teams/<str:team>/members", views.TeamMemberListView.as_view(), name="team-member-list"),
    path(
        "teams/<str:team>/members/<str:user>",
        views.TeamMemberDetailView.as_view(),
        name="team-member-detail",
    ),
    path("users/<str:username>", views.UserDetailView.as_view(), name="user-detail"),
    path("trust-policies", views.TrustPolicyListView.as_view(), name="trust-policy-list"),
    path("trust-policies/<int:pk>", views.TrustPolicyDetailView.as_view(), name="trust-policy-detail"),
    path("auth/oidc/token", views.OidcTokenExchangeView.as_view(), name="oidc-token"),
]
