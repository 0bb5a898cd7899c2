"""URL configuration: the admin, the REST API under /api/v1/, its schema and docs, health checks."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import access_urls
from core import metrics as core_metrics
from core import views as core_views
from registry import access_urls as registry_access_urls

urlpatterns = [
    # The admin signs in through the product's sign-in page: rate limited and audited like any other.
    path("admin/login/", RedirectView.as_view(url="/accounts/login/?next=/admin/", query_string=False)),
    # ... and changes one's own password on the product's page, which audits it.
    path("admin/password_change/", RedirectView.as_view(url="/accounts/password/", query_string=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("registry.api.urls", "registry-api"))),
    path("api/v1/", include(("accounts.api.urls", "accounts-api"))),
    path("api/v1/", include(("approvals.api.urls", "approvals-api"))),
    path("api/v1/", include(("audit.api.urls", "audit-api"))),
    path("api/v1/", include(("webhooks.api.urls", "webhooks-api"))),
    path("accounts/", include("accounts.urls")),
    path("registry/", include("registry.urls")),
    path("audit/", include("audit.web.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("notifications/", include("notifications.urls")),
    # The MLflow client's model registry and prompts (MLFLOW_REGISTRY_URI=http://HOST/mlflow): docs/mlflow.md
    path("mlflow/", include("mlflow_api.urls")),
    # The access section: accounts' pages and registry's grants pages, in one namespace.
    path("access/", include((access_urls.urlpatterns + registry_access_urls.urlpatterns, "access"))),
    path("", include("approvals.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        # The inline start-up script carries the CSP nonce (templates/api/swagger_ui.html).
        SpectacularSwaggerView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_metrics.metrics_view, name="metrics"),
]

handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
