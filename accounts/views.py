"""Browser sign-in, sign-out and password change for people. Service accounts cannot sign in; failures are
rate limited."""

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponseRedirect

from accounts import ratelimit, services
from accounts.usernames import sign_in_name
from core.exceptions import DomainError
from core.web import web_source


class SignInForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed sign-ins. Try again in a few minutes.",
    }

    def typed_name(self) -> str:
        return str(self.data.get("username") or "")

    def clean(self):
        # The lock is checked for the sign-in name of what was typed: the name failures are counted under
        # and the one the password backend looks the account up by (accounts.usernames).
        ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        if ratelimit.is_locked(sign_in_name(self.typed_name()), ip):
            # Refused before the password is checked, so guessing gains nothing while locked.
            raise forms.ValidationError(self.error_messages["locked"], code="locked")
        return super().clean()


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        ratelimit.clear(sign_in_name(form.get_user().username))
        services.login_record(user=form.get_user(), source=web_source(self.request))
        return response

    def form_invalid(self, form):
        codes = form.non_field_errors().as_data()
        reason = codes[0].code if codes else "invalid-form"
        response = super().form_invalid(form)
        if reason == "locked":
            # The login.locked event written when the lock engaged stands for every refused attempt.
            response.status_code = 429
            return response
        typed = form.typed_name()
        locks = ratelimit.note_failure(sign_in_name(typed), self.request.META.get("REMOTE_ADDR", ""))
        services.login_failed_record(
            username=typed, source=web_source(self.request), reason=reason, locks=locks
        )
        return response


class LogoutView(auth_views.LogoutView):
    def post(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            services.logout_record(user=request.user, source=web_source(request))
        return super().post(request, *args, **kwargs)


class PasswordChangeView(auth_views.PasswordChangeView):
    """A person changes their own password (the old one is asked for); an `account.password_changed` event."""

    template_name = "accounts/password_change.html"
    success_url = "/accounts/password/"

    def form_valid(self, form):
        try:
            user = services.user_set_password(
                actor=self.request.user,
                source=web_source(self.request),
                user=self.request.user,
                password=form.cleaned_data["new_password1"],
            )
        except DomainError as exc:
            form.add_error("new_password1", exc.errors[0].message if exc.errors else exc.detail)
            return self.form_invalid(form)
        # This session stays signed in; every other session of the account ends.
        update_session_auth_hash(self.request, user)
        messages.success(self.request, "Your password was changed. Your other sessions were signed out.")
        return HttpResponseRedirect(self.get_success_url())
