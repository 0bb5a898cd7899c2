from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.webhook_list, name="list"),
    path("new", views.webhook_create, name="create"),
    path("<int:pk>/", views.webhook_detail, name="detail"),
    path("<int:pk>/edit", views.webhook_edit, name="edit"),
    path("<int:pk>/delete", views.webhook_delete, name="delete"),
    path("<int:pk>/deliveries/<int:delivery>/redeliver", views.delivery_redeliver, name="redeliver"),
]
