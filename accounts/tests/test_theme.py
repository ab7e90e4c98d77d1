"""The theme: Light, Dark or System, remembered per user, named on <html> as data-theme."""

import pytest
from bs4 import BeautifulSoup
from django.urls import reverse

from accounts.models import User

THEME = reverse("accounts:theme_set")


def html_theme(response) -> str:
    return BeautifulSoup(response.content, "html.parser").html["data-theme"]


@pytest.mark.django_db
def test_a_new_user_follows_the_system(user):
    assert user.theme == User.Theme.SYSTEM


@pytest.mark.django_db
def test_anonymous_pages_follow_the_system(client):
    assert html_theme(client.get(reverse("login"))) == "system"


@pytest.mark.django_db
def test_the_chosen_theme_is_named_on_every_page(client, user):
    User.objects.filter(pk=user.pk).update(theme="dark")
    client.force_login(user)

    assert html_theme(client.get(reverse("accounts:profile"))) == "dark"


@pytest.mark.django_db
def test_the_top_bar_offers_light_dark_and_system_marking_the_current_one(client, user):
    client.force_login(user)

    form = BeautifulSoup(client.get(reverse("accounts:profile")).content, "html.parser").find(id="theme-toggle")

    buttons = form.find_all("button")
    assert [(b.text, b["value"], b["aria-pressed"]) for b in buttons] == [
        ("Light", "light", "false"), ("Dark", "dark", "false"), ("System", "system", "true")
    ]


@pytest.mark.django_db
def test_choosing_a_theme_saves_it_and_goes_back(client, user):
    client.force_login(user)

    response = client.post(THEME, {"theme": "light", "next": "/accounts/profile/"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/profile/"
    user.refresh_from_db()
    assert user.theme == "light"


@pytest.mark.django_db
def test_through_htmx_the_answer_is_the_form_naming_the_new_theme(client, user):
    client.force_login(user)

    response = client.post(THEME, {"theme": "dark"}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    form = BeautifulSoup(response.content, "html.parser").find(id="theme-toggle")
    assert form["data-theme"] == "dark"
    assert form.find("button", value="dark")["aria-pressed"] == "true"


@pytest.mark.django_db
def test_an_unknown_theme_is_refused(client, user):
    client.force_login(user)

    response = client.post(THEME, {"theme": "neon", "next": "/"})

    assert response.status_code == 422
    user.refresh_from_db()
    assert user.theme == "system"


@pytest.mark.django_db
def test_it_never_sends_the_user_to_another_site(client, user):
    client.force_login(user)

    response = client.post(THEME, {"theme": "dark", "next": "https://evil.example/"})

    assert response["Location"] == "/"


@pytest.mark.django_db
def test_only_post_changes_it(client, user):
    client.force_login(user)

    assert client.get(THEME).status_code == 405


@pytest.mark.django_db
def test_anonymous_visitors_cannot_set_one(client):
    response = client.post(THEME, {"theme": "dark"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_changes_the_theme_only(client, user):
    client.force_login(user)

    client.post(THEME, {"theme": "dark", "username": "someone-else", "default_system_prompt": "x"})

    user.refresh_from_db()
    assert (user.theme, user.default_system_prompt) == ("dark", "")
    assert user.username != "someone-else"
