from django import forms
from axes.utils import reset as lockout_reset
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm, UserCreationForm
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User

EMAIL_TAKEN = "An account with this email address already exists. Sign in, or reset your password."


class RegistrationForm(UserCreationForm):
    """A new account. Whether the address already has one is never said here (the view emails
    that address's owner instead, when verification is on): only a taken username is."""

    email = forms.EmailField(
        max_length=254,
        help_text="We send a link to this address to confirm it is yours.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def validate_password_for_user(self, user, password_field_name: str = "password1") -> None:
        # Name each broken password rule beside the password itself, not its confirmation.
        super().validate_password_for_user(user, password_field_name="password1")

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def validate_constraints(self) -> None:
        # The case-insensitive unique address is checked by save(), silently.
        try:
            self.instance.validate_constraints(exclude=self._get_validation_exclusions() | {"email"})
        except ValidationError as error:
            self._update_errors(error)

    def save(self, commit: bool = True) -> User | None:
        """The new account, or None when its address already has one. The password is hashed
        either way, so both take as long."""
        if User.objects.email_taken(self.cleaned_data["email"]):
            make_password(self.cleaned_data["password1"])
            return None
        try:
            with transaction.atomic():
                return super().save(commit=commit)
        except IntegrityError:  # taken by a sign-up running at the same moment
            return None


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password don't match an account. Both are case-sensitive.",
    }


class EmailChangeForm(forms.Form):
    """An unverified user correcting the address the link went to. Whether another account has
    that address is never said (its owner gets a notice instead of a link)."""

    email = forms.EmailField(
        label="Use another address", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if email == self.user.address_to_verify.lower():
            raise forms.ValidationError("That is the address we already sent the link to.", code="unchanged")
        return email


class ResetPasswordForm(SetPasswordForm):
    """A new password chosen through the emailed link. The link proves the owner, so it also
    lifts a login lockout of that username (the lockout page offers exactly this way out)."""

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=commit)
        lockout_reset(username=user.get_username())
        return user


class AccountSettingsForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("default_system_prompt",)
        widgets = {"default_system_prompt": forms.Textarea(attrs={"rows": 4, "placeholder": "e.g. Answer briefly, in British English."})}


class ThemeForm(forms.ModelForm):
    """Light, dark, or the system's setting: the top bar's buttons."""

    class Meta:
        model = User
        fields = ("theme",)
