"""Server-rendered pages of the audit app."""

app_name = "audit"
urlpatterns = []
