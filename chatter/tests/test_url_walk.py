"""Every URL pattern, walked through Django's resolver (not a hand-kept list), is checked for:

1. CSRF: signed in, a POST without a CSRF token is refused (403, or 405 from a view that does not
   take POST) and changes nothing; no view is csrf_exempt.
2. Ownership: a URL naming an object answers 404 to another user (GET and POST) and changes
   nothing. Admin URLs are staff-only instead: a signed-in non-staff user is refused.
3. Login: an anonymous visitor is sent to login with ?next=; the public URLs are an explicit
   allowlist that must match the views marked login_not_required.

A concrete URL is built for each pattern from KWARG_FACTORIES, which makes the objects its kwargs
name. A URL added later is walked like the others; if it has a kwarg the registry does not know,
its tests fail saying what to add. The machinery is in urlwalk.py; the last tests here prove each
check reports a broken view, through a throwaway URLconf.
"""

import uuid
from functools import cached_property

import pytest
from django.apps import apps
from django.contrib.admin import AdminSite
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.test import override_settings
from django.urls import path
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.csrf import csrf_exempt

from accounts.models import User
from accounts.tests.factories import UserFactory
from aimodels.models import AIModel
from aimodels.tests.factories import AIModelFactory
from chatter import urls as chatter_urls
from chatter.tests.urlwalk import (
    Endpoint,
    UncoveredUrl,
    check_admin_refuses_non_staff,
    check_anonymous,
    check_csrf_refused,
    check_exemptions_exist,
    check_no_csrf_exempt,
    check_other_user_gets_404,
    check_public_allowlist,
    missing_factories,
    model_admin_of,
    url_for,
    walk,
)
from conversations.models import Conversation, Message, Share
from conversations.tests.factories import ConversationFactory, MessageFactory, ShareFactory


# The registry: what each URL kwarg names ---------------------------------------------------------
class Objects:
    """The objects one test's URLs name, made on first use and owned by `owner`."""

    def __init__(self, owner: User) -> None:
        self.owner = owner
        self._admin_objects: dict[str, object] = {}

    @cached_property
    def conversation(self) -> Conversation:
        # AIModelFactory needs no server: nothing here streams a reply.
        return ConversationFactory(user=self.owner)

    @cached_property
    def question(self) -> Message:
        return MessageFactory(conversation=self.conversation, content="A question")

    @cached_property
    def reply(self) -> Message:
        # Complete, not pending: even a stream opened on it would not call a provider.
        return MessageFactory(conversation=self.conversation, parent=self.question, reply=True)

    @cached_property
    def share(self) -> Share:
        return ShareFactory(conversation=self.conversation)

    @cached_property
    def verification_token(self) -> str:
        return UserFactory(unverified=True).make_verification_token()

    def admin_object(self, endpoint: Endpoint):
        model_admin = model_admin_of(endpoint)
        if model_admin is None:
            raise UncoveredUrl(f"{endpoint.id}: an admin object id outside a ModelAdmin; add its factory by id")
        label = model_admin.model._meta.label
        if label not in ADMIN_OBJECTS:
            raise UncoveredUrl(
                f"{endpoint.id}: the admin has a new model, {label}: "
                "add a factory for it to ADMIN_OBJECTS in chatter/tests/test_url_walk.py"
            )
        if label not in self._admin_objects:
            self._admin_objects[label] = ADMIN_OBJECTS[label]()
        return self._admin_objects[label]


def _axes_row(label: str):
    def make():
        model = apps.get_model(label)
        fields = {"username": "someone", "ip_address": "192.0.2.1", "user_agent": "test", "http_accept": "*/*"}
        if label == "axes.AccessAttempt":
            fields.update(get_data="", post_data="", failures_since_start=1)
        return model.objects.create(path_info="/accounts/login/", **fields)

    return make


def _task_result():
    # A queued task row; no worker runs in the tests, so nothing picks it up.
    return apps.get_model("django_tasks_database.DBTaskResult").objects.create(
        task_path="chatter.tests.no_such_task", args_kwargs={"args": [], "kwargs": {}}, backend_name="default",
        run_after=timezone.now(), exception_class_path="", traceback="",
    )


# One object of each model registered in the admin (by label), for its object_id URLs.
ADMIN_OBJECTS = {
    "accounts.User": lambda: UserFactory(),
    "auth.Group": lambda: Group.objects.create(name=f"group-{uuid.uuid4().hex[:8]}"),
    "aimodels.AIModel": lambda: AIModelFactory(),
    "axes.AccessAttempt": _axes_row("axes.AccessAttempt"),
    "axes.AccessLog": _axes_row("axes.AccessLog"),
    "axes.AccessFailureLog": _axes_row("axes.AccessFailureLog"),
    "django_tasks_database.DBTaskResult": _task_result,
    "conversations.Conversation": lambda: ConversationFactory(),
    "conversations.Message": lambda: MessageFactory(),
    "conversations.Share": lambda: ShareFactory(),
}

# (scope, kwarg) -> make(objects, endpoint). The scope is a pattern id (for a kwarg one URL has) or a
# namespace (for a kwarg that means the same object in every URL of the app). urlwalk.factory_for
# tries the pattern id first, then its namespaces.
KWARG_FACTORIES = {
    # conversations: the signed-in user's conversation, and an assistant reply in it.
    ("conversations", "public_id"): lambda objects, endpoint: objects.conversation.public_id,
    ("conversations", "pk"): lambda objects, endpoint: objects.reply.pk,
    ("conversations:message_edit", "pk"): lambda objects, endpoint: objects.question.pk,  # a user's message
    # share links: one of the signed-in user's conversation, by id (revoke) and by token (its public page).
    ("conversations:share_revoke", "pk"): lambda objects, endpoint: objects.share.pk,
    ("conversations:share", "token"): lambda objects, endpoint: objects.share.token,
    # accounts: a real link, for a user who has not verified yet.
    ("accounts:verify_email_confirm", "token"): lambda objects, endpoint: objects.verification_token,
    # Django's password reset: a real link for the signed-in user.
    ("password_reset_confirm", "uidb64"): lambda objects, endpoint: urlsafe_base64_encode(
        force_bytes(objects.owner.pk)
    ),
    ("password_reset_confirm", "token"): lambda objects, endpoint: default_token_generator.make_token(objects.owner),
    # admin: an object of the model the ModelAdmin behind the URL manages.
    ("admin", "object_id"): lambda objects, endpoint: objects.admin_object(endpoint).pk,
    ("admin:auth_user_password_change", "id"): lambda objects, endpoint: objects.admin_object(endpoint).pk,
    # admin's "view on site" redirect: a content type with get_absolute_url, and one of its objects.
    ("admin:view_on_site", "content_type_id"): lambda objects, endpoint: ContentType.objects.get_for_model(
        Conversation
    ).pk,
    ("admin:view_on_site", "object_id"): lambda objects, endpoint: objects.conversation.pk,
    # admin's app index (its regex allows the registered app labels), and its catch-all for unknown paths.
    ("admin", "app_label"): lambda objects, endpoint: AIModel._meta.app_label,
    ("admin", "url"): lambda objects, endpoint: "no-such-page/",
}

# Kwargs that are not objects a user owns, so "another user gets 404" does not apply: (pattern id, kwarg).
OWNERSHIP_EXEMPT = {
    ("conversations:share", "token"): (
        "a share link's unguessable token is itself the credential: whoever holds the link may read its "
        "snapshot, signed in as anyone or not (a public view)"
    ),
    ("accounts:verify_email_confirm", "token"): (
        "a signed, expiring token that is itself the credential: whoever holds the emailed link may "
        "confirm the address it names, signed in as anyone or not (a public view)"
    ),
    ("password_reset_confirm", "uidb64"): (
        "names the account to reset; worthless without the token beside it (a public view)"
    ),
    ("password_reset_confirm", "token"): (
        "Django's password-reset token: the emailed credential itself, bound to the account's state (a public view)"
    ),
}
# Admin URLs are exempt as a whole: staff see every object, so instead of the other-user 404 each
# admin URL must refuse a signed-in user who is not staff (test_admin_refuses_a_non_staff_user).

# The URLs an anonymous visitor may open: exactly the views marked login_not_required.
PUBLIC_URLS = {
    "login",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "accounts:register",
    "accounts:register_done",
    "accounts:verify_email_confirm",
    "admin:login",
    "conversations:share",
}


# The walk, at collection time -------------------------------------------------------------------
ENDPOINTS = walk()
ADMIN_PRIVATE = [e for e in ENDPOINTS if e.is_admin and e.id not in PUBLIC_URLS]
OWNED = [e for e in ENDPOINTS if not e.is_admin and any((e.id, k) not in OWNERSHIP_EXEMPT for k in e.kwargs)]


def by_id(endpoints: list[Endpoint]) -> list:
    return [pytest.param(endpoint, id=endpoint.id) for endpoint in endpoints]


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def other(db):
    return UserFactory()


# The walk itself -----------------------------------------------------------------------------------
def test_the_walk_finds_every_kind_of_url():
    ids = {e.id for e in ENDPOINTS}

    # A broken walker must not pass the checks below by finding nothing.
    assert len(ENDPOINTS) >= 60, sorted(ids)
    assert {
        "conversations:index",
        "conversations:message_create",
        "conversations:reply_stream",
        "accounts:register",
        "accounts:verify_email_confirm",
        "login",
        "password_reset_confirm",
        "admin:index",
        "admin:aimodels_aimodel_change",
        "admin:app_list",  # a regex pattern
        "admin:accounts/user/<path:object_id>/",  # an unnamed one
    } <= ids
    assert {e.id for e in OWNED} >= {
        "conversations:detail",
        "conversations:message_create",
        "conversations:reply_stream",
        "conversations:reply_stop",
        "conversations:reply_retry",
    }
    assert len(ADMIN_PRIVATE) >= 40


def test_every_url_kwarg_has_a_factory():
    missing = {e.id: missing_factories(e, KWARG_FACTORIES) for e in ENDPOINTS}

    assert not {i: kwargs for i, kwargs in missing.items() if kwargs}, "add these to KWARG_FACTORIES"


def test_no_view_is_csrf_exempt():
    assert check_no_csrf_exempt(ENDPOINTS) == []


def test_public_urls_are_exactly_the_views_marked_login_not_required():
    assert check_public_allowlist(ENDPOINTS, PUBLIC_URLS) == []


def test_ownership_exemptions_name_only_existing_kwargs():
    assert check_exemptions_exist(ENDPOINTS, OWNERSHIP_EXEMPT) == []
    assert all(reason.strip() for reason in OWNERSHIP_EXEMPT.values())


# The checks, one per URL pattern -----------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", by_id(ENDPOINTS))
def test_post_without_csrf_token_is_refused(endpoint, owner, staff_user):
    user = staff_user if endpoint.is_admin else owner
    url = url_for(endpoint, Objects(user), KWARG_FACTORIES)

    assert check_csrf_refused(endpoint, url, user) == [], url


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", by_id(ENDPOINTS))
def test_anonymous_visitor_is_sent_to_login(endpoint, owner):
    url = url_for(endpoint, Objects(owner), KWARG_FACTORIES)

    assert check_anonymous(endpoint, url, PUBLIC_URLS) == [], url


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", by_id(OWNED))
def test_another_users_object_is_404(endpoint, owner, other):
    url = url_for(endpoint, Objects(owner), KWARG_FACTORIES)

    assert check_other_user_gets_404(endpoint, url, owner, other) == [], url


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", by_id(ADMIN_PRIVATE))
def test_admin_refuses_a_non_staff_user(endpoint, owner, other):
    url = url_for(endpoint, Objects(owner), KWARG_FACTORIES)

    assert check_admin_refuses_non_staff(endpoint, url, other) == [], url


# Each check can fail: a throwaway URLconf with one hole per rule -----------------------------------
@login_not_required
def _open_page(request):
    return HttpResponse("anyone may read this")


@csrf_exempt
def _group_create(request):
    Group.objects.create(name=f"made-by-{request.method}")
    return HttpResponse(status=201)


def _conversation_anyones(request, public_id):
    conversation = get_object_or_404(Conversation, public_id=public_id)  # not through request.user
    return HttpResponse(conversation.title)


def _widget(request, widget_id):
    return HttpResponse(str(widget_id))


def _leak(request):
    return HttpResponse("admin data, no staff check")


class _NoStaffCheckAdminSite(AdminSite):
    """An admin site with one view added without admin_view(), so without the staff check."""

    def get_urls(self):
        return [path("leak/", _leak, name="leak"), *super().get_urls()]


class HoleyUrls:
    """chatter's URLs plus one broken view per rule (a class with urlpatterns serves as a URLconf)."""

    urlpatterns = [
        *chatter_urls.urlpatterns,
        path("holes/open/", _open_page, name="hole_open"),
        path("holes/groups/", _group_create, name="hole_csrf_exempt"),
        path("holes/c/<uuid:public_id>/", _conversation_anyones, name="hole_leak"),
        path("holes/widgets/<int:widget_id>/", _widget, name="hole_widget"),
        path("holey-admin/", _NoStaffCheckAdminSite(name="holey_admin").urls),
    ]


HOLE_FACTORIES = {**KWARG_FACTORIES, ("hole_leak", "public_id"): KWARG_FACTORIES[("conversations", "public_id")]}


@pytest.fixture
def holes(db):
    with override_settings(ROOT_URLCONF=HoleyUrls):
        yield {e.id: e for e in walk()}


def test_the_walk_covers_a_new_url_without_anyone_listing_it(holes):
    assert {"hole_open", "hole_csrf_exempt", "hole_leak", "hole_widget", "holey_admin:leak"} <= set(holes)
    assert len(holes) > len(ENDPOINTS)


def test_anonymous_check_reports_a_view_open_without_login(holes, owner):
    endpoint = holes["hole_open"]
    url = url_for(endpoint, Objects(owner), HOLE_FACTORIES)

    problems = check_anonymous(endpoint, url, PUBLIC_URLS)

    assert problems and "anonymous GET answered 200" in problems[0]
    assert "hole_open: marked login_not_required but not in PUBLIC_URLS" in check_public_allowlist(
        holes.values(), PUBLIC_URLS
    )


def test_anonymous_check_reports_a_public_url_that_sends_to_login(owner):
    endpoint = next(e for e in ENDPOINTS if e.id == "accounts:profile")
    url = url_for(endpoint, Objects(owner), KWARG_FACTORIES)

    assert check_anonymous(endpoint, url, PUBLIC_URLS | {"accounts:profile"}) != []
    assert check_public_allowlist(ENDPOINTS, PUBLIC_URLS | {"accounts:profile", "gone"}) == [
        "accounts:profile: in PUBLIC_URLS but not marked login_not_required",
        "gone: in PUBLIC_URLS but no URL pattern has that name",
    ]


def test_csrf_check_reports_a_view_that_takes_a_post_without_token(holes, owner):
    endpoint = holes["hole_csrf_exempt"]
    url = url_for(endpoint, Objects(owner), HOLE_FACTORIES)

    problems = check_csrf_refused(endpoint, url, owner)

    assert problems == [
        "the view is csrf_exempt",
        "POST without a CSRF token answered 201, not 403 (or 405)",
        "POST without a CSRF token changed ['auth.Group']",
    ]
    assert check_no_csrf_exempt(holes.values()) == ["hole_csrf_exempt: csrf_exempt"]


def test_ownership_check_reports_a_lookup_not_made_through_the_user(holes, owner, other):
    endpoint = holes["hole_leak"]
    url = url_for(endpoint, Objects(owner), HOLE_FACTORIES)

    problems = check_other_user_gets_404(endpoint, url, owner, other)

    assert "GET answered 200 to another user, not 404" in problems
    assert "POST answered 200 to another user, not 404" in problems


def test_ownership_check_reports_a_url_that_misses_the_owners_object(owner, other):
    # A factory naming the wrong object would make every 404 vacuous: the owner's request shows it.
    endpoint = next(e for e in ENDPOINTS if e.id == "conversations:detail")
    wrong = {**KWARG_FACTORIES, ("conversations", "public_id"): lambda objects, endpoint: uuid.uuid4()}
    url = url_for(endpoint, Objects(owner), wrong)

    problems = check_other_user_gets_404(endpoint, url, owner, other)

    assert any("the owner's GET answers 404 too" in p for p in problems)


def test_admin_check_reports_a_view_without_the_staff_check(holes, owner, other):
    endpoint = holes["holey_admin:leak"]
    url = url_for(endpoint, Objects(owner), HOLE_FACTORIES)

    problems = check_admin_refuses_non_staff(endpoint, url, other)

    assert len(problems) == 2
    assert problems[0].startswith("a non-staff GET answered 200")
    assert problems[1].startswith("a non-staff POST answered 200")


def test_registry_refuses_a_kwarg_it_does_not_know(holes, owner):
    with pytest.raises(UncoveredUrl, match=r"'hole_widget'.*\['widget_id'\].*KWARG_FACTORIES"):
        url_for(holes["hole_widget"], Objects(owner), HOLE_FACTORIES)


def test_exemption_check_reports_a_stale_entry():
    stale = {("accounts:verify_email_confirm", "tokn"), ("conversations:gone", "pk")}

    assert sorted(check_exemptions_exist(ENDPOINTS, stale)) == [
        "('accounts:verify_email_confirm', 'tokn'): no URL pattern has this kwarg",
        "('conversations:gone', 'pk'): no URL pattern has this kwarg",
    ]
