"""Password authentication for people only: service accounts never log in with a password."""

from django.contrib.auth.backends import ModelBackend


class PersonBackend(ModelBackend):
    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)
