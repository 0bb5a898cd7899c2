"""Password authentication for people only: service accounts never log in with a password."""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

from accounts.models import User
from accounts.usernames import accounts_named


class PersonBackend(ModelBackend):
    """Finds the account by its sign-in name (accounts.usernames), the same name the rate limit counts.

    A name that matches no person, or several (accounts created before names were compared this way), signs
    nobody in; the password hasher runs anyway, so the answer takes as long as for a wrong password.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None or not settings.PASSWORD_SIGN_IN:
            return None
        matches = accounts_named(username, people_only=True)
        if len(matches) != 1:
            User().set_password(password)
            return None
        user = matches[0]
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)
