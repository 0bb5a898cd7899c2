"""Server-rendered pages of the registry app."""

app_name = "registry"
urlpatterns = []
