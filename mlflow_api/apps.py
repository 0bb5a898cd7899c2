from django.apps import AppConfig


class MlflowApiConfig(AppConfig):
    """The model-registry subset of the MLflow REST API (2.0), served under /mlflow/ through the registry's
    services and selectors, so that the unmodified MLflow client registers, resolves and promotes here."""

    name = "mlflow_api"
    verbose_name = "MLflow API"
