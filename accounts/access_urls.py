"""Server-rendered access pages (service accounts, tokens, your own tokens, teams, people), mounted at
/access/ in the `access` namespace, together with registry's grants pages (registry/access_urls.py)."""

from django.urls import path

from accounts import access_views as views
from accounts import trust_views

urlpatterns = [
    path("", views.index, name="index"),
    path("service-accounts/new", views.service_account_create, name="service-account-create"),
    path("tokens/new", views.token_create, name="token-create"),
    path("tokens/created", views.token_created, name="token-created"),
    path("tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("tokens/mine", views.my_tokens, name="my-tokens"),
    path("tokens/mine/new", views.my_token_create, name="my-token-create"),
    path("teams/", views.teams, name="teams"),
    path("teams/<str:team>/", views.team, name="team"),
    path("teams/<str:team>/members/add", views.team_member_add, name="team-member-add"),
    path(
        "teams/<str:team>/members/<str:username>/remove", views.team_member_remove, name="team-member-remove"
    ),
    path("people/", views.people, name="people"),
    path("people/<str:username>/", views.person, name="person"),
    path("people/<str:username>/roles", views.person_roles, name="person-roles"),
    path("trust-policies/", trust_views.trust_policies, name="trust-policies"),
    path("trust-policies/new", trust_views.trust_policy_create, name="trust-policy-create"),
    path("trust-policies/<int:pk>/edit", trust_views.trust_policy_edit, name="trust-policy-edit"),
    path("trust-policies/<int:pk>/delete", trust_views.trust_policy_delete, name="trust-policy-delete"),
]
