from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import services
from accounts.forms import LoginForm, RegistrationForm
from accounts.middleware import verification_not_required
from accounts.models import User


@login_not_required
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            if settings.EMAIL_VERIFICATION_REQUIRED and user.claim_verification_send():
                transaction.on_commit(
                    lambda: services.verification_email_send(user=user, request=request)
                )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to chatter, {user.username}.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/register.html", {"form": form})


@verification_not_required
def verify_email_pending(request: HttpRequest) -> HttpResponse:
    if not request.user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(
        request,
        "accounts/verify_email_pending.html",
        {"wait_seconds": request.user.seconds_until_resend()},
    )


@require_POST
@verification_not_required
def verify_email_resend(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    if user.claim_verification_send():
        services.verification_email_send(user=user, request=request)
        messages.success(request, f"We sent a new link to {user.email}.")
    else:
        messages.error(
            request,
            f"A link was sent moments ago. You can ask for another in "
            f"{user.seconds_until_resend()} seconds.",
        )
    return redirect("accounts:verify_email_pending")


@login_not_required
@verification_not_required
def verify_email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user = User.from_verification_token(token)
    except signing.SignatureExpired:
        problem = "expired"
    except (signing.BadSignature, User.DoesNotExist, KeyError, TypeError):
        problem = "invalid"
    else:
        user.mark_email_verified()
        messages.success(request, f"Thanks, {user.email} is confirmed.")
        if request.user.is_authenticated and request.user.pk == user.pk:
            return redirect(settings.LOGIN_REDIRECT_URL)
        return redirect("login")
    return render(
        request, "accounts/verify_email_failed.html", {"problem": problem}, status=400
    )


def profile(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/profile.html")


def lockout_response(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """django-axes calls this when a login is refused for too many failures.

    Its sync and async middleware pass different arguments, so read only the request."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    form = LoginForm(request, initial={"username": request.POST.get("username", "")})
    return render(
        request,
        "registration/login.html",
        {"form": form, "locked_out": True, "cooloff_minutes": minutes},
        status=429,
    )
