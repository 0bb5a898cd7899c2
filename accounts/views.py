"""Browser sign-in, sign-out and password change for people. Service accounts cannot sign in; failures are
rate limited."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from accounts import federation, ratelimit, services, sso
from accounts.usernames import sign_in_name
from core.exceptions import DomainError
from core.web import web_source

SSO_NEXT = "sso_next"


class SignInForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed sign-ins. Try again in a few minutes.",
        "password-sign-in-off": "Sign-in with a password is switched off: use single sign-on.",
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
        if not settings.PASSWORD_SIGN_IN:
            raise forms.ValidationError(
                self.error_messages["password-sign-in-off"], code="password-sign-in-off"
            )
        return super().clean()


def sign_in_context() -> dict:
    """What the sign-in page offers: the password form, single sign-on, or both."""
    return {
        "sso_enabled": sso.enabled(),
        "sso_label": settings.SSO_LABEL,
        "password_sign_in": settings.PASSWORD_SIGN_IN,
    }


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True
    extra_context = None

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sign_in_context()}

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


def _sso_failure(request, source, *, name: str, reason: str) -> None:
    """A failed single sign-on is a login.failed event, counted by the same limits as passwords: a caller
    replaying bad callbacks adds about the limit's worth of events, then one login.locked stands for the
    rest."""
    ip = request.META.get("REMOTE_ADDR", "")
    if ratelimit.is_locked(sign_in_name(name), ip):
        return
    locks = ratelimit.note_failure(sign_in_name(name), ip)
    services.login_failed_record(username=name, source=source, reason=reason, locks=locks)


def _sso_refused(request, message: str, status: int):
    context = {"form": SignInForm(request), "next": "", "sso_error": message, **sign_in_context()}
    return render(request, "accounts/login.html", context, status=status)


@require_GET
def sso_login(request):
    """Send the person to the identity provider (authorization code with PKCE); back at sso_callback."""
    if not sso.enabled():
        raise Http404("Single sign-on is not configured.")
    next_url = request.GET.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    request.session[SSO_NEXT] = next_url if next_url and safe else settings.LOGIN_REDIRECT_URL
    callback = request.build_absolute_uri(reverse("accounts:sso-callback"))
    try:
        return sso.client().authorize_redirect(request, callback)
    except sso.FAILURES:
        return _sso_refused(request, "The identity provider cannot be reached now. Try again later.", 503)


@require_GET
def sso_callback(request):
    """The provider's answer: verify it, sign the person in (account and teams updated), or say why not."""
    if not sso.enabled():
        raise Http404("Single sign-on is not configured.")
    source = web_source(request)
    try:
        token = sso.client().authorize_access_token(request)
        claims = dict(token.get("userinfo") or {})
        if claims.get("iss") != settings.SSO_OIDC_ISSUER:
            raise ValueError("no verified ID token from the configured issuer")
    except sso.FAILURES as exc:
        _sso_failure(request, source, name="", reason=f"sso: {type(exc).__name__}"[:100])
        return _sso_refused(request, "Single sign-on did not complete. Start again.", 400)
    try:
        user = federation.sso_sign_in(source=source, claims=claims)
    except DomainError as exc:
        name = str(claims.get(settings.SSO_USERNAME_CLAIM) or claims.get("sub") or "")
        _sso_failure(request, source, name=name, reason=f"sso: {exc.type}")
        return _sso_refused(request, exc.detail, 403)
    next_url = request.session.pop(SSO_NEXT, settings.LOGIN_REDIRECT_URL)
    login(request, user, backend="accounts.backends.PersonBackend")
    return HttpResponseRedirect(next_url)
