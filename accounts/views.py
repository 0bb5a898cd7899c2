"""Browser sign-in and sign-out for people. Service accounts cannot sign in; failures are rate limited."""

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm

from accounts import ratelimit, services
from core.source import Channel, Source


class SignInForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed sign-ins. Try again in a few minutes.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        if ratelimit.is_locked(username, ip):
            # Refused before the password is checked, so guessing gains nothing while locked.
            raise forms.ValidationError(self.error_messages["locked"], code="locked")
        return super().clean()


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        ratelimit.clear(form.get_user().username)
        services.login_record(user=form.get_user(), source=Source.from_request(self.request, Channel.WEB))
        return response

    def form_invalid(self, form):
        username = (self.request.POST.get("username") or "")[:150]
        codes = form.non_field_errors().as_data()
        reason = codes[0].code if codes else "invalid-form"
        if reason != "locked":
            ratelimit.note_failure(username, self.request.META.get("REMOTE_ADDR", ""))
        services.login_failed_record(
            username=username, source=Source.from_request(self.request, Channel.WEB), reason=reason
        )
        response = super().form_invalid(form)
        if reason == "locked":
            response.status_code = 429
        return response


class LogoutView(auth_views.LogoutView):
    def post(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            services.logout_record(user=request.user, source=Source.from_request(request, Channel.WEB))
        return super().post(request, *args, **kwargs)
