from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password"),
    path("sso/login", views.sso_login, name="sso-login"),
    path("sso/callback", views.sso_callback, name="sso-callback"),
]
