from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.forms import LoginForm, ResetPasswordForm
from accounts.middleware import verification_not_required

# Django's auth views keep their standard names (login, logout, password_reset, ...) at the
# top level so its templates and emails find them; chatter's own views live in "accounts:".
auth_urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", verification_not_required(auth_views.LogoutView.as_view()), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password_reset/", views.password_reset, name="password_reset"),
    path("password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(form_class=ResetPasswordForm),
        name="password_reset_confirm",
    ),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]

app_name = "accounts"
urlpatterns = [
    path("register/", views.register, name="register"),
    path("register/done/", views.register_done, name="register_done"),
    path("verify/", views.verify_email_pending, name="verify_email_pending"),
    path("verify/resend/", views.verify_email_resend, name="verify_email_resend"),
    path("verify/email/", views.verify_email_change, name="verify_email_change"),
    path("verify/<str:token>/", views.verify_email_confirm, name="verify_email_confirm"),
    path("profile/", views.profile, name="profile"),
]
urlpatterns += [path("theme/", views.theme_set, name="theme_set")]
