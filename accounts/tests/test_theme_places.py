"""The theme switch is one partial shown in two places on the chat page: the top bar and, for phones,
the conversations drawer. Each copy has its own id, and htmx's answer keeps the id of the one that asked."""

import pytest
from bs4 import BeautifulSoup
from django.urls import reverse

THEME = reverse("accounts:theme_set")


def theme_forms(response) -> list[str]:
    return [form["id"] for form in BeautifulSoup(response.content, "html.parser").select("form.theme-toggle")]


@pytest.mark.django_db
def test_the_chat_page_has_the_switch_in_the_top_bar_and_in_the_drawer_with_their_own_ids(client, user):
    client.force_login(user)

    page = BeautifulSoup(client.get(reverse("conversations:new")).content, "html.parser")

    assert page.select_one("header.topbar form.theme-toggle")["id"] == "theme-toggle"
    assert page.select_one("#sidebar form.theme-toggle")["id"] == "drawer-theme-toggle"


@pytest.mark.django_db
def test_other_pages_have_the_top_bars_switch_only(client, user):
    client.force_login(user)

    assert theme_forms(client.get(reverse("accounts:profile"))) == ["theme-toggle"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("target", "answered_id"),
    [
        ("theme-toggle", "theme-toggle"),
        ("drawer-theme-toggle", "drawer-theme-toggle"),
        ("message-list", "theme-toggle"),  # any other target: the top bar's id
    ],
)
def test_the_answer_keeps_the_id_of_the_form_that_asked(client, user, target, answered_id):
    client.force_login(user)

    response = client.post(THEME, {"theme": "dark"}, headers={"HX-Request": "true", "HX-Target": target})

    assert theme_forms(response) == [answered_id]
