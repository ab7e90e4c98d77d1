from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import PasswordResetForm
from django.core import signing
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import limits, tasks
from accounts.forms import EMAIL_TAKEN, AccountSettingsForm, EmailChangeForm, LoginForm, RegistrationForm, ThemeForm
from accounts.middleware import verification_not_required
from accounts.models import User
from conversations.models import Message

SIGNUP_ADDRESS = "accounts.signup_address"
USAGE_DAYS = 30  # the account page's usage totals cover this many days  # session key: where the sign-up's email went


def _link_sent(request: HttpRequest, user: User, response: HttpResponse) -> HttpResponse:
    """`response`, after which the address `user` is verifying gets the link, or, when another
    account has that address, its owner gets a notice instead. The page says the same either way."""
    base_url = request.build_absolute_uri("/")
    if User.objects.email_taken(user.address_to_verify, besides=user):
        return tasks.enqueue_after(response, tasks.address_taken_notice_send, address=user.address_to_verify, base_url=base_url)
    return tasks.enqueue_after(response, tasks.verification_email_send, user_id=user.pk, base_url=base_url)


@login_not_required
@limits.actions_per_ip
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        address = form.cleaned_data["email"]
        if not settings.EMAIL_VERIFICATION_REQUIRED:
            # Without verification no email is sent, so a taken address can only be said.
            if user := form.save():
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome to chatter, {user.username}.")
                return redirect(settings.LOGIN_REDIRECT_URL)
            form.add_error("email", EMAIL_TAKEN)
        elif refused := limits.emails_to(request, address):
            return refused
        else:
            request.session[SIGNUP_ADDRESS] = address
            response, base_url = redirect("accounts:register_done"), request.build_absolute_uri("/")
            if user := form.save():
                user.claim_verification_send()
                return tasks.enqueue_after(response, tasks.verification_email_send, user_id=user.pk, base_url=base_url)
            return tasks.enqueue_after(response, tasks.address_taken_notice_send, address=address, base_url=base_url)
    return render(request, "accounts/register.html", {"form": form})


@login_not_required
def register_done(request: HttpRequest) -> HttpResponse:
    address = request.session.get(SIGNUP_ADDRESS)
    if address is None:
        return redirect("accounts:register")
    return render(request, "accounts/register_done.html", {"address": address})


@login_not_required
@limits.actions_per_ip
def password_reset(request: HttpRequest) -> HttpResponse:
    """Django's password reset, with the email sent by a task: the request does the same work
    whether or not the address has an account."""
    form = PasswordResetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        address = form.cleaned_data["email"]
        if refused := limits.emails_to(request, address):
            return refused
        return tasks.enqueue_after(
            redirect("password_reset_done"),
            tasks.password_reset_email_send,
            email=address,
            domain=request.get_host(),
            use_https=request.is_secure(),
        )
    return render(request, "registration/password_reset_form.html", {"form": form, "title": "Password reset"})


def _pending_page(request: HttpRequest, email_form: EmailChangeForm, status: int = 200) -> HttpResponse:
    context = {"wait_seconds": request.user.seconds_until_resend(), "email_form": email_form}
    return render(request, "accounts/verify_email_pending.html", context, status=status)


@verification_not_required
def verify_email_pending(request: HttpRequest) -> HttpResponse:
    if not request.user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    return _pending_page(request, EmailChangeForm(user=request.user))


@require_POST
@verification_not_required
@limits.actions_per_ip
def verify_email_change(request: HttpRequest) -> HttpResponse:
    """Correct a mistyped address and send the link there. Sending is rate-limited like a
    resend; an address change that cannot send now saves nothing."""
    user = request.user
    if not user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = EmailChangeForm(request.POST, user=user)
    if form.is_valid():
        address = form.cleaned_data["email"]
        if not user.claim_verification_send():
            form.add_error(
                "email",
                f"A link was sent moments ago. You can change the address in {user.seconds_until_resend()} seconds.",
            )
        elif refused := limits.emails_to(request, address):
            return refused
        else:
            user.switch_address(address)
            messages.success(request, f"We sent a new link to {address}.")
            return _link_sent(request, user, redirect("accounts:verify_email_pending"))
    return _pending_page(request, form, status=422)


@require_POST
@verification_not_required
@limits.actions_per_ip
def verify_email_resend(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.needs_verification:
        return redirect(settings.LOGIN_REDIRECT_URL)
    if not user.claim_verification_send():
        messages.error(
            request,
            f"A link was sent moments ago. You can ask for another in {user.seconds_until_resend()} seconds.",
        )
    elif refused := limits.emails_to(request, user.address_to_verify):
        return refused
    else:
        messages.success(request, f"We sent a new link to {user.address_to_verify}.")
        return _link_sent(request, user, redirect("accounts:verify_email_pending"))
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
        try:
            user.mark_email_verified()
        except IntegrityError:  # another account took the new address since the link was sent
            return render(request, "accounts/verify_email_failed.html", {"problem": "taken"}, status=409)
        messages.success(request, f"Thanks, {user.email} is confirmed.")
        if request.user.is_authenticated and request.user.pk == user.pk:
            return redirect(settings.LOGIN_REDIRECT_URL)
        return redirect("login")
    return render(
        request, "accounts/verify_email_failed.html", {"problem": problem}, status=400
    )


def profile(request: HttpRequest) -> HttpResponse:
    form = AccountSettingsForm(request.POST or None, instance=request.user)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            messages.success(request, "Your settings are saved.")
            return redirect("accounts:profile")
    since = timezone.now() - timedelta(days=USAGE_DAYS)
    usage = Message.objects.usage_by_model(user=request.user, since=since)
    context = {"form": form, "usage": usage, "usage_days": USAGE_DAYS}
    return render(request, "accounts/profile.html", context, status=422 if form.errors else 200)


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


@require_POST
@verification_not_required
def theme_set(request: HttpRequest) -> HttpResponse:
    """Remember the user's theme. The top bar's form posts here: through htmx it gets the form back
    (theme.js applies the choice to the page); without script, a redirect back to the page it was on."""
    form = ThemeForm(request.POST, instance=request.user)
    if not form.is_valid():  # only a forged request gets here: the form offers the three choices
        return render(request, "base.html#theme-toggle", status=422)
    form.save(commit=False).save(update_fields=["theme"])
    if request.headers.get("HX-Request"):
        return render(request, "base.html#theme-toggle")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = settings.LOGIN_REDIRECT_URL
    return redirect(next_url)
