import io
import os
import re
import subprocess
import sys
from pathlib import Path

from django.core.mail import EmailMessage

from accounts.mail import ConsoleBackend

LINK = "http://127.0.0.1:8000/accounts/verify/eyJ1IjoxLCJlIjoidXNlcjBAZXhhbXBsZS5jb20ifQ:1xXP6a:" + "x" * 60 + "/"


def test_a_long_link_is_printed_whole_and_the_text_decoded():
    stream = io.StringIO()
    message = EmailMessage("Confirm — now", f"Hello,\n\n{LINK}\n\nThat’s all.", "a@example.com", ["b@example.com"])

    ConsoleBackend(stream=stream).send_messages([message])

    printed = stream.getvalue()
    assert LINK in printed.splitlines()
    assert "That’s all." in printed
    assert "Subject: Confirm — now" in printed
    assert "To: b@example.com" in printed
    assert not re.search(r"=\n|=E2=80", printed)


def test_without_an_email_url_mail_goes_to_the_readable_console():
    env = {k: v for k, v in os.environ.items() if k != "EMAIL_URL"}
    env.update(CHATTER_ENV_FILE=os.devnull, SECRET_KEY="x" * 50, DJANGO_SETTINGS_MODULE="chatter.settings")
    printed = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.MAILERS['default']['BACKEND'])"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, check=True,
    ).stdout

    assert printed.strip() == "accounts.mail.ConsoleBackend"
