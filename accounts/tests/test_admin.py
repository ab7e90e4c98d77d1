import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.mark.django_db
def test_non_staff_cannot_open_the_admin(client, user):
    client.force_login(user)

    response = client.get(reverse("admin:accounts_user_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_staff_list_and_search_users(admin_client):
    UserFactory(username="grace", email="grace@navy.example")
    UserFactory(username="linus")

    response = admin_client.get(reverse("admin:accounts_user_changelist"), {"q": "navy"})

    assert response.status_code == 200
    names = [u.username for u in response.context["cl"].result_list]
    assert names == ["grace"]


@pytest.mark.django_db
def test_staff_filter_unverified_users(admin_client):
    UserFactory(username="pending", unverified=True)

    response = admin_client.get(reverse("admin:accounts_user_changelist"), {"verified": "no"})

    assert [u.username for u in response.context["cl"].result_list] == ["pending"]


@pytest.mark.django_db
def test_staff_grant_staff_status(admin_client):
    member = UserFactory(username="member")
    url = reverse("admin:accounts_user_change", args=[member.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("password", "groups", "user_permissions")}
    data.update(is_staff="on", is_active="on", date_joined_0="2026-01-01", date_joined_1="10:00:00")
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data.pop("email_verified_at", None)

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    member.refresh_from_db()
    assert member.is_staff


@pytest.mark.django_db
def test_staff_cannot_edit_a_superuser(admin_client):
    root = User.objects.create_superuser("root", "root@example.com", "Root-Password-123")

    response = admin_client.get(reverse("admin:accounts_user_change", args=[root.pk]))

    assert "is_superuser" not in response.context["adminform"].form.fields
    assert response.context["has_change_permission"] is False


@pytest.mark.django_db
def test_staff_cannot_make_a_superuser(admin_client):
    member = UserFactory()

    response = admin_client.get(reverse("admin:accounts_user_change", args=[member.pk]))

    assert "is_superuser" not in response.context["adminform"].form.fields


@pytest.mark.django_db
def test_a_lockout_shows_when_it_expires_not_an_object_name(client, user):
    from axes.models import AccessAttempt, AccessAttemptExpiration

    for _ in range(2):
        client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    attempt = AccessAttempt.objects.get()
    assert AccessAttemptExpiration.objects.filter(access_attempt=attempt).exists()
    staff = UserFactory(staff=True)
    client.force_login(staff)

    listing = client.get(reverse("admin:axes_accessattempt_changelist")).content.decode()
    page = client.get(reverse("admin:axes_accessattempt_change", args=[attempt.pk])).content.decode()

    for html in (listing, page):
        assert "AccessAttemptExpiration object" not in html
        assert "Expires at" in html
