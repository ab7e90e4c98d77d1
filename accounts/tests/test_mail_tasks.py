"""Account emails leave the request path as tasks: a request does the same work whether or not
the address has an account, and the email is sent by whichever task backend is configured."""

import re
import threading

import pytest
from django.core import mail
from django.core.management import call_command
from django.tasks import TaskResultStatus, default_task_backend
from django.urls import reverse

from accounts import tasks
from accounts.tests.factories import UserFactory

RESET = reverse("password_reset")
REGISTER = reverse("accounts:register")


def sign_up(client, email: str, username: str = "newcomer"):
    password = "Analytical-Engine-1843"
    return client.post(
        REGISTER, {"username": username, "email": email, "password1": password, "password2": password}
    )


def shape(result) -> tuple:
    return result.task.name, sorted(result.kwargs)


@pytest.mark.django_db
def test_password_reset_sends_nothing_during_the_request(client, user, queued_tasks):
    response = client.post(RESET, {"email": user.email})

    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []
    assert [shape(r) for r in queued_tasks] == [("password_reset_email_send", ["domain", "email", "use_https"])]


@pytest.mark.django_db
def test_password_reset_does_the_same_for_a_known_and_an_unknown_address(client, user, queued_tasks):
    client.post(RESET, {"email": user.email})
    client.post(RESET, {"email": "nobody@example.com"})

    known, unknown = queued_tasks
    assert shape(known) == shape(unknown)
    assert {**known.kwargs, "email": "?"} == {**unknown.kwargs, "email": "?"}


@pytest.mark.django_db
def test_the_queued_reset_task_mails_a_working_link_to_an_account_only(client, user, queued_tasks):
    client.post(RESET, {"email": user.email})
    client.post(RESET, {"email": "nobody@example.com"})

    for result in queued_tasks:
        tasks.password_reset_email_send.call(**result.kwargs)

    assert [m.to for m in mail.outbox] == [[user.email]]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    assert client.get(link, follow=True).context["validlink"]


@pytest.mark.django_db
def test_sign_up_does_the_same_for_a_free_and_a_taken_address(client, queued_tasks):
    UserFactory(email="taken@example.com")
    free = sign_up(client, "free@example.com", username="first")
    taken = sign_up(client, "taken@example.com", username="second")

    assert free["Location"] == taken["Location"]
    assert mail.outbox == []
    assert len(queued_tasks) == 2
    assert sorted(queued_tasks[0].kwargs) == ["base_url", "user_id"]
    assert sorted(queued_tasks[1].kwargs) == ["address", "base_url"]


@pytest.mark.django_db(transaction=True)
def test_the_default_backend_sends_the_email_from_a_worker_thread(client, settings, monkeypatch):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_local.ThreadPoolBackend"}}
    senders = []
    send = tasks._mail
    monkeypatch.setattr(tasks, "_mail", lambda **kwargs: (senders.append(threading.current_thread()), send(**kwargs)))

    sign_up(client, "new@example.com")
    for future in list(default_task_backend._state.futures.values()):
        future.result(timeout=60)  # the task's state, done (no sleeping)

    assert senders and senders[0] is not threading.current_thread()
    assert [m.to for m in mail.outbox] == [["new@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_the_database_backend_queues_the_email_for_a_worker(client, user, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    from django_tasks_db.models import DBTaskResult

    client.post(RESET, {"email": user.email})
    assert mail.outbox == []
    assert DBTaskResult.objects.count() == 1

    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)

    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL
    assert [m.to for m in mail.outbox] == [[user.email]]


@pytest.mark.django_db
def test_the_email_is_queued_only_once_the_response_has_been_sent(rf, user, queued_tasks):
    from accounts.views import password_reset

    response = password_reset(rf.post(RESET, {"email": user.email}))
    assert response.status_code == 302
    assert queued_tasks == []

    response.close()  # what the server does after the last byte

    assert [r.task.name for r in queued_tasks] == ["password_reset_email_send"]
