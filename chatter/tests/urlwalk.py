"""Walk every URL pattern through Django's resolver and check each one the same way.

test_url_walk.py holds what is particular to chatter (which kwarg names which object, which URLs
are public, which kwargs are not owned objects); this module holds the machinery: the walker, the
URL builder, and one checking function per rule. A check returns the list of what it found wrong
(empty when the URL passes), so a test can assert both that a real URL passes and that a broken
one is reported.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.admin import ModelAdmin
from django.contrib.auth.views import redirect_to_login
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.crypto import get_random_string
from django.utils.regex_helper import normalize


class UncoveredUrl(AssertionError):
    """A URL pattern the registry cannot build a concrete URL for."""


# The walk -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """One URL pattern, with the includes that lead to it."""

    id: str  # "conversations:reply_stop"; unnamed patterns: "admin:accounts/user/<path:object_id>/"
    name: str | None  # the name reverse() knows it by, namespaced, or None
    namespace: str  # instance namespace path ("conversations", "admin"); "" at the root
    app_names: tuple[str, ...]  # application namespaces of the includes ("admin",)
    route: str  # the route from the root, for messages
    chain: tuple  # the URLResolver includes, then the URLPattern itself
    callback: Callable
    kwargs: tuple[str, ...]  # the URL's keyword arguments, in order

    @property
    def is_admin(self) -> bool:
        return "admin" in self.app_names

    @property
    def marked_public(self) -> bool:
        """Marked with django.contrib.auth.decorators.login_not_required."""
        return getattr(self.callback, "login_required", True) is False

    @property
    def csrf_exempt(self) -> bool:
        return getattr(self.callback, "csrf_exempt", False) is True

    def __str__(self) -> str:
        return self.id


def _pattern_kwargs(pattern) -> list[str]:
    if isinstance(pattern, RoutePattern):
        return list(pattern.converters)
    return list(pattern.regex.groupindex)


def walk(urlconf: Any = None) -> list[Endpoint]:
    """Every URL pattern of the URLconf (the project's when None), through every include."""
    endpoints: list[Endpoint] = []

    def visit(patterns, chain, namespace, app_names):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner_ns = namespace
                if entry.namespace:
                    inner_ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                inner_apps = (*app_names, entry.app_name) if entry.app_name else app_names
                visit(entry.url_patterns, (*chain, entry), inner_ns, inner_apps)
            elif isinstance(entry, URLPattern):
                full_chain = (*chain, entry)
                kwargs = tuple(k for piece in full_chain for k in _pattern_kwargs(piece.pattern))
                route = "".join(str(piece.pattern) for piece in full_chain)
                # The route inside the namespace: the part after the include that opened it.
                ns_start = max((i + 1 for i, p in enumerate(chain) if p.namespace), default=0)
                local_route = "".join(str(piece.pattern) for piece in full_chain[ns_start:])
                name = None
                if entry.name:
                    name = f"{namespace}:{entry.name}" if namespace else entry.name
                endpoint_id = name or f"{namespace}:{local_route}"
                endpoints.append(
                    Endpoint(
                        id=endpoint_id,
                        name=name,
                        namespace=namespace,
                        app_names=app_names,
                        route=route,
                        chain=full_chain,
                        callback=entry.callback,
                        kwargs=kwargs,
                    )
                )

    visit(get_resolver(urlconf).url_patterns, (), "", ())
    # Two patterns may share a name (reverse() then picks one): keep ids unique all the same.
    seen: dict[str, int] = {}
    unique = []
    for endpoint in endpoints:
        seen[endpoint.id] = seen.get(endpoint.id, 0) + 1
        if seen[endpoint.id] > 1:
            endpoint = Endpoint(**{**endpoint.__dict__, "id": f"{endpoint.id} [{endpoint.route}]"})
        unique.append(endpoint)
    return unique


# Concrete URLs --------------------------------------------------------------------------------
ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")

# (scope, kwarg) -> make(objects, endpoint) -> value; scope is an endpoint id or a namespace.
Registry = Mapping[tuple[str, str], Callable[[Any, Endpoint], Any]]


def factory_for(endpoint: Endpoint, kwarg: str, registry: Registry):
    """The registry's factory for one kwarg: the endpoint's own entry first, then its namespace's
    (innermost first), then its application namespace's (a second admin site is still "admin")."""
    scopes = [endpoint.id]
    parts = endpoint.namespace.split(":") if endpoint.namespace else []
    scopes += [":".join(parts[:i]) for i in range(len(parts), 0, -1)]
    scopes += list(reversed(endpoint.app_names))
    scopes.append("")
    for scope in scopes:
        if (scope, kwarg) in registry:
            return registry[(scope, kwarg)]
    return None


def missing_factories(endpoint: Endpoint, registry: Registry) -> list[str]:
    return [kwarg for kwarg in endpoint.kwargs if factory_for(endpoint, kwarg, registry) is None]


def build_path(endpoint: Endpoint, values: Mapping[str, Any]) -> str:
    """Fill the endpoint's route with values, piece by piece, as reverse() would."""
    url = ""
    for piece in endpoint.chain:
        pattern = piece.pattern
        if isinstance(pattern, RoutePattern):
            url += ROUTE_PARAM.sub(
                lambda m: str(pattern.converters[m["parameter"]].to_url(values[m["parameter"]])), str(pattern)
            )
        elif isinstance(pattern, RegexPattern):
            wanted = set(pattern.regex.groupindex)
            for template, params in normalize(pattern.regex.pattern):
                if set(params) == wanted:
                    url += template % {k: str(values[k]) for k in params}
                    break
            else:
                raise UncoveredUrl(f"{endpoint.id}: cannot fill the regex {pattern.regex.pattern!r}")
        else:
            raise UncoveredUrl(f"{endpoint.id}: unknown pattern type {type(pattern).__name__}")
    return "/" + url


def url_for(endpoint: Endpoint, objects: Any, registry: Registry, urlconf: Any = None) -> str:
    """A concrete URL for the endpoint, its kwargs made by the registry's factories from objects.

    Raises UncoveredUrl, naming the kwarg, when the registry does not know one, and when the URL it
    builds does not resolve back to the same view (so the checks cannot test some other URL)."""
    missing = missing_factories(endpoint, registry)
    if missing:
        raise UncoveredUrl(
            f"URL pattern {endpoint.id!r} ({endpoint.route}) has kwarg(s) {missing} that the registry in "
            "chatter/tests/test_url_walk.py does not know. Add a factory to KWARG_FACTORIES that makes the "
            "object the URL names (owned by the signed-in user), so the URL walk covers this view; if the "
            "kwarg is not an object a user owns, also add it to OWNERSHIP_EXEMPT saying why."
        )
    values = {kwarg: factory_for(endpoint, kwarg, registry)(objects, endpoint) for kwarg in endpoint.kwargs}
    path = build_path(endpoint, values)
    match = resolve(path, urlconf)
    if match.func is not endpoint.callback:
        raise UncoveredUrl(f"{endpoint.id}: the URL built, {path}, resolves to another view ({match.view_name})")
    return path


def model_admin_of(endpoint: Endpoint) -> ModelAdmin | None:
    """The ModelAdmin behind an admin endpoint (its views carry it, or are its bound methods)."""
    view = endpoint.callback
    while view is not None:
        if isinstance(getattr(view, "model_admin", None), ModelAdmin):
            return view.model_admin
        if isinstance(getattr(view, "__self__", None), ModelAdmin):
            return view.__self__
        view = getattr(view, "__wrapped__", None)
    return None


# Checks ---------------------------------------------------------------------------------------
_handlers: dict[tuple, Any] = {}


def new_client(*, enforce_csrf_checks: bool = False) -> Client:
    """A fresh test Client (its own cookies) on a request handler shared by the walk: building the
    middleware stack, where servestatic indexes every static file, costs more than the requests.
    The stack is the project's own, rebuilt if MIDDLEWARE changes."""
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    key = (enforce_csrf_checks, tuple(settings.MIDDLEWARE))
    client.handler = _handlers.setdefault(key, client.handler)
    return client


def db_state() -> dict[str, list[tuple]]:
    """Every row of every model: compared before and after a request that must change nothing."""
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values_list())
        for model in apps.get_models()
        if model._meta.managed
    }


def _changed(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after[label]]


def _location(response) -> str:
    return response.headers.get("Location", "")


def login_redirects(endpoint: Endpoint, url: str) -> set[str]:
    """Where an anonymous visitor may be sent: the site's login, with ?next= back to the URL;
    for admin URLs the admin's own login is fine too."""
    targets = {redirect_to_login(url, resolve_url(settings.LOGIN_URL))["Location"]}
    if endpoint.is_admin:
        targets.add(redirect_to_login(url, reverse(f"{endpoint.namespace}:login"))["Location"])
    return targets


def check_csrf_refused(endpoint: Endpoint, url: str, user) -> list[str]:
    """Signed in as user, a POST with the CSRF cookie but without the token is refused:
    403 from the CSRF check, or 405 from a view that does not take POST; never one that acts."""
    problems = []
    if endpoint.csrf_exempt:
        problems.append("the view is csrf_exempt")
    client = new_client(enforce_csrf_checks=True)
    client.force_login(user)
    # A valid CSRF cookie, as a browser would hold: the request lacks only the token.
    client.cookies[settings.CSRF_COOKIE_NAME] = get_random_string(CSRF_SECRET_LENGTH, CSRF_ALLOWED_CHARS)
    before = db_state()
    response = client.post(url)
    if response.status_code not in (403, 405):
        problems.append(f"POST without a CSRF token answered {response.status_code}, not 403 (or 405)")
    if changed := _changed(before, db_state()):
        problems.append(f"POST without a CSRF token changed {changed}")
    return problems


def check_anonymous(endpoint: Endpoint, url: str, public: Iterable[str]) -> list[str]:
    """Anonymous: a non-public URL sends GET and POST to login (?next= back here) and changes
    nothing; a public one answers itself (no login redirect)."""
    client = new_client()  # CSRF not enforced: this is about the login check behind it
    targets = login_redirects(endpoint, url)
    if endpoint.id in public:
        response = client.get(url)
        if response.status_code == 302 and _location(response) in targets:
            return [f"listed public, but an anonymous GET is sent to login ({_location(response)})"]
        return []
    problems = []
    before = db_state()
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if response.status_code != 302 or _location(response) not in targets:
            problems.append(
                f"anonymous {method.upper()} answered {response.status_code} {_location(response)!r}, "
                f"not a redirect to one of {sorted(targets)}"
            )
    if changed := _changed(before, db_state()):
        problems.append(f"anonymous requests changed {changed}")
    return problems


def check_other_user_gets_404(endpoint: Endpoint, url: str, owner, other) -> list[str]:
    """Signed in as other, GET and POST (CSRF satisfied) on owner's object answer 404 and change
    nothing. The owner, asked afterwards, proves the URL reaches the object: where the owner gets
    405 (the view does not take that method), other must get 405 too."""
    problems = []
    stranger, owner_client = new_client(), new_client()
    stranger.force_login(other)
    owner_client.force_login(owner)
    before = db_state()
    theirs = {method: getattr(stranger, method)(url).status_code for method in ("get", "post")}
    if changed := _changed(before, db_state()):
        problems.append(f"another user's requests changed {changed}")
    # Asked after the stranger, so what the owner's requests do cannot affect the stranger's.
    mine = {method: getattr(owner_client, method)(url).status_code for method in ("get", "post")}
    for method in ("get", "post"):
        if mine[method] == 404:
            problems.append(
                f"the owner's {method.upper()} answers 404 too: the URL does not reach the owner's object, "
                "so this check proves nothing (fix the factory in KWARG_FACTORIES)"
            )
        elif mine[method] == 405:
            if theirs[method] != 405:
                problems.append(f"{method.upper()} answered {theirs[method]} to another user, the owner 405")
        elif theirs[method] != 404:
            problems.append(f"{method.upper()} answered {theirs[method]} to another user, not 404")
    if all(status == 405 for status in mine.values()):
        problems.append("the view refuses both GET and POST to its owner: nothing was checked")
    return problems


def check_admin_refuses_non_staff(endpoint: Endpoint, url: str, user) -> list[str]:
    """Signed in without staff rights: GET and POST (CSRF satisfied) are refused (403, or sent to
    the admin login, or from the admin's logout to its index) and change nothing."""
    client = new_client()
    client.force_login(user)
    admin_login = redirect_to_login(url, reverse(f"{endpoint.namespace}:login"))["Location"]
    try:
        admin_index = reverse(f"{endpoint.namespace}:index")
    except NoReverseMatch:
        admin_index = None
    problems = []
    before = db_state()
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        refused = response.status_code == 403 or (
            response.status_code == 302 and _location(response) in (admin_login, admin_index)
        )
        if not refused:
            problems.append(
                f"a non-staff {method.upper()} answered {response.status_code} {_location(response)!r}, "
                f"not 403 or a redirect to {admin_login}"
            )
    if changed := _changed(before, db_state()):
        problems.append(f"a non-staff user's requests changed {changed}")
    return problems


def check_public_allowlist(endpoints: Iterable[Endpoint], public: Iterable[str]) -> list[str]:
    """The views marked login_not_required are exactly the allowlist."""
    endpoints = list(endpoints)
    public = set(public)
    ids = {e.id for e in endpoints}
    marked = {e.id for e in endpoints if e.marked_public}
    problems = [f"{i}: marked login_not_required but not in PUBLIC_URLS" for i in sorted(marked - public)]
    problems += [f"{i}: in PUBLIC_URLS but not marked login_not_required" for i in sorted((public & ids) - marked)]
    problems += [f"{i}: in PUBLIC_URLS but no URL pattern has that name" for i in sorted(public - ids)]
    return problems


def check_no_csrf_exempt(endpoints: Iterable[Endpoint]) -> list[str]:
    return [f"{e.id}: csrf_exempt" for e in endpoints if e.csrf_exempt]


def check_exemptions_exist(endpoints: Iterable[Endpoint], exempt: Iterable[tuple[str, str]]) -> list[str]:
    """Each (endpoint id, kwarg) the exemption table names exists, so the table cannot go stale."""
    kwargs = {(e.id, kwarg) for e in endpoints for kwarg in e.kwargs}
    return [f"{entry}: no URL pattern has this kwarg" for entry in exempt if entry not in kwargs]
