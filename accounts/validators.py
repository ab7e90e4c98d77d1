from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

CLASSES = {
    "lower case letters": lambda c: c.islower(),
    "upper case letters": lambda c: c.isupper(),
    "digits": lambda c: c.isdigit(),
    "symbols": lambda c: not c.isalnum(),
}


class CharacterClassValidator:
    """The password mixes at least `min_classes` of: lower case, upper case, digits, symbols."""

    def __init__(self, min_classes: int = 3) -> None:
        self.min_classes = min_classes

    def validate(self, password: str, user=None) -> None:
        used = [name for name, test in CLASSES.items() if any(test(c) for c in password)]
        if len(used) < self.min_classes:
            raise ValidationError(
                _("This password must mix at least %(min)d of: lower case letters, upper case "
                  "letters, digits and symbols (it has %(used)s)."),
                code="password_too_simple",
                params={"min": self.min_classes, "used": ", ".join(used) or "none of them"},
            )

    def get_help_text(self) -> str:
        return ngettext(
            "Your password must mix at least %(min)d kind of character: lower case letters, "
            "upper case letters, digits and symbols.",
            "Your password must mix at least %(min)d kinds of character: lower case letters, "
            "upper case letters, digits and symbols.",
            self.min_classes,
        ) % {"min": self.min_classes}
