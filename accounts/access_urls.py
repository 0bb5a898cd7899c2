"""Server-rendered access pages (grants, service accounts, tokens), mounted at /access/."""

app_name = "access"
urlpatterns = []
