"""Server-rendered pages of the audit app, for auditors and registry admins."""

from django.urls import path

from audit.web import views

app_name = "audit"
urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("assets/<str:kind>/<str:name>/", views.asset_timeline, name="asset-timeline"),
    path("integrity/", views.integrity, name="integrity"),
    path("integrity/verify", views.integrity_verify, name="integrity-verify"),
]
