import pytest

from accounts.tests.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def unverified_user(db):
    return UserFactory(unverified=True)


@pytest.fixture
def staff_user(db):
    return UserFactory(staff=True)
