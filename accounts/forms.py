from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts.models import User


def clean_new_email(email: str, user: User | None = None) -> str:
    """The address, normalised, if no other account uses it (ignoring case)."""
    email = email.strip().lower()
    others = User.objects.exclude(pk=user.pk) if user else User.objects.all()
    if others.filter(email__iexact=email).exists():
        raise forms.ValidationError(
            "An account with this email address already exists. Sign in, or reset your password.",
            code="email_taken",
        )
    return email


class RegistrationForm(UserCreationForm):
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
        return clean_new_email(self.cleaned_data["email"])


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password don't match an account. Both are case-sensitive.",
    }


class EmailChangeForm(forms.ModelForm):
    """An unverified user correcting the address the link went to."""

    class Meta:
        model = User
        fields = ("email",)
        labels = {"email": "Use another address"}

    def clean_email(self) -> str:
        email = clean_new_email(self.cleaned_data["email"], self.instance)
        if email == self.instance.email:
            raise forms.ValidationError("That is the address we already sent the link to.", code="unchanged")
        return email
