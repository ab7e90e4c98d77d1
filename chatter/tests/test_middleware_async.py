"""Under ASGI every middleware runs on the event loop: Django adapts none of them, and none of
their hooks hops to a thread on a page or a reply's stream. The hooks that may touch the
database still do their work (in a thread, when they do): a login's session is saved, a message
survives its redirect, a POST without its CSRF token is refused with the site's page."""

import logging

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.core.checks import run_checks
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient
from django.urls import reverse

from accounts.tests.factories import PASSWORD
from chatter.checks import REQUIRED_MIDDLEWARE
from conversations.tests.factories import MessageFactory

MIDDLEWARE_HOOKS = {"process_request", "process_response", "process_view", "_aprocess_view"}


def test_django_adapts_no_middleware(settings, caplog):
    settings.DEBUG = True  # Django says what it adapts only then
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler().load_middleware(is_async=True)

    assert [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()] == []


@pytest.fixture
def hops(monkeypatch) -> list[str]:
    """The name of every function sent to a thread by sync_to_async while the test runs."""
    seen = []
    original = SyncToAsync.__init__

    def spy(self, func, *args, **kwargs):
        seen.append(getattr(func, "__name__", None) or type(func).__name__)
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__init__", spy)
    return seen


def the_pages(reply):
    conversation = reply.conversation
    return [
        reverse("conversations:detail", args=[conversation.public_id]),
        reverse("conversations:reply_stream", args=[conversation.public_id, reply.pk]),
    ]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_no_middleware_hook_hops_to_a_thread_for_a_page_or_a_stream(async_client, user, hops):
    reply = await sync_to_async(MessageFactory)(
        conversation__user=user, role="assistant", status="complete", content="Done."
    )
    await async_client.aforce_login(user)
    hops.clear()

    for url in await sync_to_async(the_pages)(reply):
        response = await async_client.get(url)
        assert response.status_code == 200, url
        if response.streaming:
            [chunk async for chunk in response.streaming_content]

    assert hops, "the spy saw nothing: the page's view and queries run in threads"
    assert MIDDLEWARE_HOOKS.isdisjoint(hops), hops


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_finished_replys_stream_goes_to_a_thread_three_times(async_client, user, hops):
    """The user (session and user in one trip), the reply (its connection then given back), and
    its bubble (whether it is the last, and the template)."""
    reply = await sync_to_async(MessageFactory)(
        conversation__user=user, role="assistant", status="complete", content="Done."
    )
    await async_client.aforce_login(user)
    stream = (await sync_to_async(the_pages)(reply))[1]
    hops.clear()

    response = await async_client.get(stream)
    body = b"".join([chunk async for chunk in response.streaming_content])

    assert b"event: done" in body
    # (sync_send: Django's request signals, whose receivers are sync)
    assert [hop for hop in hops if hop != "sync_send"] == ["get_user", "_reply_to_stream", "_finished_bubble"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_login_over_asgi_saves_its_session(async_client, user):
    response = await async_client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302

    page = await async_client.get(reverse("accounts:profile"))

    assert page.status_code == 200
    assert user.username in page.content.decode()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_message_before_a_redirect_is_shown_once_after_it(async_client, user):
    await async_client.aforce_login(user)

    response = await async_client.post(reverse("accounts:profile"), {"default_system_prompt": "Be brief."})
    assert response.status_code == 302
    after = (await async_client.get(response["Location"])).content.decode()
    again = (await async_client.get(response["Location"])).content.decode()

    assert "Your settings are saved." in after
    assert "Your settings are saved." not in again


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_csrf_over_asgi_refuses_a_post_without_its_token_with_the_sites_page(user):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)

    page = await client.get(reverse("accounts:profile"))
    token = page.cookies["csrftoken"].value
    refused = await client.post(reverse("accounts:profile"), {"default_system_prompt": "Be brief."})
    accepted = await client.post(
        reverse("accounts:profile"), {"default_system_prompt": "Be brief."}, headers={"X-CSRFToken": token}
    )

    assert page.status_code == 200
    assert refused.status_code == 403
    assert "chatter" in refused.content.decode()  # the site's page, not Django's bare one
    assert accepted.status_code == 302


@pytest.mark.parametrize(("code", "required", "effect"), REQUIRED_MIDDLEWARE, ids=[c for c, *_ in REQUIRED_MIDDLEWARE])
def test_deploy_checks_want_each_security_middleware_or_a_subclass(settings, code, required, effect):
    def warnings():
        return [m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("chatter.")]

    assert warnings() == []
    settings.MIDDLEWARE = [p for p in settings.MIDDLEWARE if not p.endswith("." + required.__name__)]
    assert warnings() == [f"chatter.{code}"]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{required.__module__}.{required.__name__}"]
    assert warnings() == []
