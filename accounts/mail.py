"""The development mail backend: Django's console backend, readably.

Django prints a message as it would be sent, so a long line (a verification or reset link)
arrives quoted-printable, broken by "=" soft line breaks, and a link pasted from the console is
"not valid". This prints the headers as they are and each text part decoded."""

from django.core.mail.backends.console import EmailBackend


class ConsoleBackend(EmailBackend):
    def write_message(self, message) -> None:
        msg = message.message()
        for name, value in msg.items():
            if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
                self.stream.write(f"{name}: {value}\n")
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                self.stream.write(f"\n{part.get_content()}\n")
        self.stream.write("-" * 79 + "\n")
