import pytest
from bs4 import BeautifulSoup
from django.test import RequestFactory
from django.urls import reverse

from chatter import views


@pytest.mark.django_db
def test_404_page_uses_the_site_layout(client, user):
    client.force_login(user)

    response = client.get("/no/such/page/")

    assert response.status_code == 404
    soup = BeautifulSoup(response.content, "html.parser")
    assert soup.find("a", class_="brand")
    assert "Not found" in soup.h1.text


@pytest.mark.django_db
def test_htmx_404_gets_a_partial_for_the_error_banner(client, user):
    client.force_login(user)

    response = client.get("/no/such/page/", headers={"HX-Request": "true"})

    assert response.status_code == 404
    assert response["HX-Retarget"] == "#error-banner"
    assert b"<html" not in response.content
    assert b"Not found" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "handler, status, text",
    [
        (views.bad_request, 400, "Bad request"),
        (views.permission_denied, 403, "Not allowed"),
        (views.page_not_found, 404, "Not found"),
        (views.server_error, 500, "Something went wrong"),
    ],
)
def test_error_handlers_render_in_the_layout(handler, status, text, user):
    request = RequestFactory().get("/x/")
    request.user = user

    response = handler(request) if status == 500 else handler(request, Exception("boom"))

    assert response.status_code == status
    body = response.content.decode()
    assert text in body
    assert "boom" not in body
    assert 'class="brand"' in body


@pytest.mark.django_db
def test_500_partial_for_htmx(user):
    request = RequestFactory().post("/x/", headers={"HX-Request": "true"})
    request.user = user

    response = views.server_error(request)

    assert response.status_code == 500
    assert response["HX-Retarget"] == "#error-banner"
    assert b"Something went wrong" in response.content


@pytest.mark.django_db
def test_csrf_failure_uses_the_layout(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(reverse("logout"))

    assert response.status_code == 403
    assert b'class="brand"' in response.content
    assert "_auth_user_id" in client.session
