"""The registry's pages in the access section: who holds which role on an asset. config/urls.py mounts them
under /access/ with accounts' access pages, in the `access` namespace."""

from django.urls import path

from registry import access_views as views

urlpatterns = [
    path("assets/<str:kind>/<str:name>/", views.asset_grants, name="asset-grants"),
    path("assets/<str:kind>/<str:name>/grants/add", views.grant_add, name="grant-add"),
    path("assets/<str:kind>/<str:name>/grants/remove", views.grant_remove, name="grant-remove"),
]
