import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.core import signing
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone

VERIFICATION_SALT = "accounts.email-verification"


class UserManager(DjangoUserManager):
    def get_by_natural_key(self, username: str) -> "User":
        return self.get(username=username)

    def email_taken(self, address: str, *, besides: "User | None" = None) -> bool:
        """Whether an account (other than `besides`) has this address, ignoring case."""
        others = self.exclude(pk=besides.pk) if besides else self.all()
        return others.filter(email__iexact=address).exists()

    def create_superuser(self, username, email=None, password=None, **extra_fields):
        # Whoever runs createsuperuser on the server vouches for the address.
        extra_fields.setdefault("email_verified_at", timezone.now())
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    class Theme(models.TextChoices):  # in the order the top bar offers them
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"
        SYSTEM = "system", "System"

    email = models.EmailField("email address", max_length=254)
    email_verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the user followed the link sent to their address."
    )
    pending_email = models.EmailField(
        "new address",
        max_length=254,
        blank=True,
        default="",
        help_text="An address the user asked to switch to; it replaces the email when its link is opened.",
    )
    default_system_prompt = models.TextField(
        "default system prompt",
        blank=True,
        max_length=8000,
        help_text="Instructions every new conversation starts with; each conversation can change its own.",
    )
    verification_sent_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the last verification email left."
    )
    theme = models.CharField(
        max_length=6, choices=Theme, default=Theme.SYSTEM,
        help_text="Light or dark pages, or as the device's setting says.",
    )

    objects = UserManager()

    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                violation_error_message="An account with this email address already exists.",
            ),
            models.UniqueConstraint(
                Lower("username"),
                name="accounts_user_username_ci_unique",
                violation_error_message="That username is taken.",
            ),
        ]

    def __str__(self) -> str:
        return self.username

    def clean(self) -> None:
        super().clean()
        self.email = self.email.strip().lower()

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def needs_verification(self) -> bool:
        return settings.EMAIL_VERIFICATION_REQUIRED and not self.email_verified

    @property
    def address_to_verify(self) -> str:
        """Where the verification link goes: the address being switched to, else the email."""
        return self.pending_email or self.email

    # Email verification: a signed, timestamped token naming the user and the address it
    # was sent to, so a link for an old address stops working when the address changes.
    def make_verification_token(self) -> str:
        return signing.dumps({"u": self.pk, "e": self.address_to_verify}, salt=VERIFICATION_SALT, compress=True)

    @classmethod
    def from_verification_token(cls, token: str) -> "User":
        """The user a token names. Raises signing.SignatureExpired for an old link,
        signing.BadSignature for a tampered one, User.DoesNotExist if it no longer matches."""
        data = signing.loads(token, salt=VERIFICATION_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE)
        user = cls.objects.get(pk=data["u"])
        if user.address_to_verify.lower() != str(data["e"]).lower():
            raise cls.DoesNotExist("The link is for an address the user no longer asks to verify.")
        return user

    def mark_email_verified(self) -> None:
        """Confirm the address the link went to, switching to it when it was a new one. Raises
        IntegrityError when another account has taken that address since."""
        fields = []
        if self.pending_email:
            self.email, self.pending_email = self.pending_email, ""
            fields += ["email", "pending_email"]
        if self.email_verified_at is None:
            self.email_verified_at = timezone.now()
            fields.append("email_verified_at")
        if fields:
            with transaction.atomic():  # a savepoint: a clash leaves the caller's transaction usable
                self.save(update_fields=fields)

    def switch_address(self, address: str) -> None:
        """Ask to verify `address` instead (kept aside until its link is opened)."""
        self.pending_email = "" if address.lower() == self.email.lower() else address
        self.save(update_fields=["pending_email"])

    def claim_verification_send(self) -> bool:
        """Reserve the right to send a verification email now. A compare-and-set in SQL,
        so two workers (or two clicks) cannot both send inside the resend interval."""
        now = timezone.now()
        cutoff = now - timedelta(seconds=settings.EMAIL_VERIFICATION_RESEND_SECONDS)
        claimed = (
            User.objects.filter(pk=self.pk)
            .filter(models.Q(verification_sent_at__isnull=True) | models.Q(verification_sent_at__lte=cutoff))
            .update(verification_sent_at=now)
        )
        if claimed:
            self.verification_sent_at = now
        return bool(claimed)

    def seconds_until_resend(self) -> int:
        """Whole seconds until claim_verification_send() can succeed, rounded up: never 0 while
        it would still refuse, and 0 from the moment it would not."""
        if self.verification_sent_at is None:
            return 0
        wait = self.verification_sent_at + timedelta(
            seconds=settings.EMAIL_VERIFICATION_RESEND_SECONDS
        ) - timezone.now()
        return max(0, math.ceil(wait.total_seconds()))
