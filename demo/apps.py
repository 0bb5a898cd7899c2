from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data (`manage.py load_demo`): the one app that may use every other, through their services."""

    name = "demo"
    verbose_name = "Demo data"
