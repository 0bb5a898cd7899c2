"""/mlflow/: MLflow's REST API 2.0 (api/ for the client, ajax-api/ as the MLflow UI spells it), model registry
routes only; every other path under /mlflow/ answers ENDPOINT_NOT_FOUND in MLflow's error shape."""

from django.urls import path, re_path

from mlflow_api import views

app_name = "mlflow"
urlpatterns = [
    path(
        f"{prefix}/2.0/mlflow/{endpoint}",
        views.MlflowView.as_view(route=route, endpoint=endpoint),
        name=f"{prefix}-{endpoint.replace('/', '-')}",
    )
    for prefix in ("api", "ajax-api")
    for endpoint, route in views.ROUTES.items()
]
urlpatterns.append(re_path(r"^(?P<rest>.*)$", views.not_served, name="not-served"))
