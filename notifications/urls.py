"""The notifications pages: each person's choice of e-mails."""

from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("settings/", views.notification_settings, name="settings"),
]
