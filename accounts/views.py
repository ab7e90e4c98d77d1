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
from accounts.forms import EmailChangeForm, LoginForm, RegistrationForm
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


def _pending_page(request: HttpRequest, email_form: EmailChangeForm, status: int = 200) -> HttpResponse:
    context = {"wait_seconds": request.user.seconds_until_resend(), "email_form": email_form}
    return render(request, "accounts/verify_email_pending.html", context, status=status)


@verification_not_required
def verify_email_pending(request: HttpRequest) -> HttpResponse:
    if not request.user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    return _pending_page(request, EmailChangeForm())


@require_POST
@verification_not_required
def verify_email_change(request: HttpRequest) -> HttpResponse:
    """Correct a mistyped address and send the link there. Sending is rate-limited like a
    resend; an address change that cannot send now saves nothing."""
    if not request.user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = EmailChangeForm(request.POST, instance=User.objects.get(pk=request.user.pk))
    if form.is_valid():
        with transaction.atomic():
            if form.instance.claim_verification_send():
                user = form.save()
                transaction.on_commit(lambda: services.verification_email_send(user=user, request=request))
                messages.success(request, f"We sent a new link to {user.email}.")
                return redirect("accounts:verify_email_pending")
        form.add_error(
            "email",
            f"A link was sent moments ago. You can change the address in {request.user.seconds_until_resend()} "
            "seconds.",
        )
    return _pending_page(request, form, status=422)


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
