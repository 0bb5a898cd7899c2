"""Server-rendered pages of the approvals app."""

app_name = "approvals"
urlpatterns = []
