"""Settings for chatter. Every value that differs between machines comes from the
environment (or a .env file) through django-environ; .env.example documents each one."""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values already in the environment win over the file. CHATTER_ENV_FILE names another file.
environ.Env.read_env(os.environ.get("CHATTER_ENV_FILE", BASE_DIR / ".env"), overwrite=False)

SECRET_KEY = env.str("SECRET_KEY")
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "chatter",
    "accounts",
    "aimodels",
    "conversations",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "django_tasks_db",
]

# Every middleware here runs on the event loop under ASGI: Django's own through chatter's
# subclasses of them (chatter.middleware), so a request hops to a thread only for its work.
MIDDLEWARE = [
    "chatter.middleware.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    # After servestatic: every response but a static file's is no-store unless it says otherwise.
    "chatter.middleware.NoStoreMiddleware",
    # Before anything that reads the database (the session): a request waits its turn holding nothing.
    "chatter.middleware.SyncViewsAtOnceMiddleware",
    "chatter.middleware.SessionMiddleware",
    "chatter.middleware.CommonMiddleware",
    "chatter.middleware.CsrfViewMiddleware",
    "chatter.middleware.AuthenticationMiddleware",
    "accounts.middleware.AccessMiddleware",
    "chatter.middleware.MessageMiddleware",
    "chatter.middleware.XFrameOptionsMiddleware",
    "chatter.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    # Last, so its 400 page has the user, CSRF cookie, CSP nonce and headers of any page; nothing
    # above reads request.GET, request.POST or the body before the view.
    "chatter.middleware.Utf8InputMiddleware",
]

ROOT_URLCONF = "chatter.urls"
WSGI_APPLICATION = "chatter.wsgi.application"
ASGI_APPLICATION = "chatter.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# Database: an SQLite file by default; PostgreSQL (psycopg 3) when DATABASE_URL says so.
def database_from_env(env: environ.Env) -> dict:
    """DATABASES["default"] from the environment.

    On PostgreSQL each process keeps a pool of connections (psycopg_pool, through Django): at
    most DB_POOL_MAX_SIZE open, DB_POOL_MIN_SIZE kept open while idle, and a request waits at
    most DB_POOL_TIMEOUT seconds for a free one, past which it is answered 503 (chatter.views).
    A request takes a connection when it first needs one and gives it back when it ends, so
    CONN_MAX_AGE (persistent connections, which Django refuses with a pool) must be 0 there:
    any other value is refused here, by name, rather than by Django inside the first request."""
    database = env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    sqlite = database["ENGINE"] == "django.db.backends.sqlite3"
    # On SQLite the worker's few request threads (chatter/threads.py) each keep a connection
    # between requests: opening one (and setting it up) costs more than most of a request's queries.
    conn_max_age = env.int("CONN_MAX_AGE", default=600 if sqlite else 0)
    if sqlite:
        database["CONN_MAX_AGE"] = conn_max_age
        # WAL lets readers carry on while a reply is written; wait rather than fail on a lock.
        database["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif database["ENGINE"] == "django.db.backends.postgresql":
        if conn_max_age:
            raise ImproperlyConfigured(
                f"CONN_MAX_AGE={conn_max_age} cannot be used with PostgreSQL: chatter pools the connections "
                "there (DB_POOL_MAX_SIZE, DB_POOL_MIN_SIZE, DB_POOL_TIMEOUT) and each request gives its "
                "connection back to the pool when it ends. Remove CONN_MAX_AGE or set it to 0."
            )
        pool = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
            "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
        }
        if not (1 <= pool["max_size"] and 0 <= pool["min_size"] <= pool["max_size"] and pool["timeout"] > 0):
            raise ImproperlyConfigured(
                "The database pool needs DB_POOL_MAX_SIZE >= 1, 0 <= DB_POOL_MIN_SIZE <= DB_POOL_MAX_SIZE and "
                f"DB_POOL_TIMEOUT > 0; got {pool['max_size']}, {pool['min_size']} and {pool['timeout']:g}."
            )
        database["CONN_MAX_AGE"] = 0
        database["OPTIONS"] = {**database.get("OPTIONS", {}), "pool": pool}
        # .iterator() (a model picker's choices) in one round trip, not DECLARE, FETCH and CLOSE.
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
    else:
        database["CONN_MAX_AGE"] = conn_max_age
    return database


DATABASES = {"default": database_from_env(env)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis, when REDIS_URL is set (redis://HOST:6379/0): replies' events travel through it
# (conversations.relay), so any worker's page follows a reply any worker writes, and a stop
# reaches its writer; and the cache below is shared by every worker.
REDIS_URL = env.str("REDIS_URL", default="")
# Connections each worker may open to Redis for the relay: a page following a reply another
# worker writes holds one while it waits for the next event, so this bounds those pages per
# worker (redis-py's default, 100, refused the 101st: its page fell back to the checkpoints).
REDIS_RELAY_CONNECTIONS = env.int("REDIS_RELAY_CONNECTIONS", default=2_000)


def caches_from_env(env: environ.Env) -> dict:
    """The cache (rate-limit counters, anything cached): CACHE_URL when set; else Django's
    built-in Redis cache at REDIS_URL when that is set, so every worker counts the same; else
    per process."""
    if env.str("CACHE_URL", default=""):
        return {"default": env.cache_url("CACHE_URL")}
    if redis_url := env.str("REDIS_URL", default=""):
        return {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                # A request waits at most this long on an unreachable Redis.
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
            }
        }
    return {"default": env.cache_url_config("locmemcache://")}


CACHES = caches_from_env(env)

# Accounts and authentication
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
CSRF_FAILURE_VIEW = "chatter.views.csrf_failure"
LOGIN_REDIRECT_URL = "conversations:index"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_MIN_LENGTH = env.int("PASSWORD_MIN_LENGTH", default=12)
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("username", "email")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "accounts.validators.CharacterClassValidator", "OPTIONS": {"min_classes": 3}},
]
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=60 * 60 * 24)

# Email verification: a signed link, valid for this long; a new one at most this often.
EMAIL_VERIFICATION_REQUIRED = env.bool("EMAIL_VERIFICATION_REQUIRED", default=True)
EMAIL_VERIFICATION_MAX_AGE = env.int("EMAIL_VERIFICATION_MAX_AGE", default=60 * 60 * 48)
EMAIL_VERIFICATION_RESEND_SECONDS = env.int("EMAIL_VERIFICATION_RESEND_SECONDS", default=60)

# Login lockout (django-axes): AXES_FAILURE_LIMIT failures for one username within
# AXES_COOLOFF_MINUTES lock that username out for AXES_COOLOFF_MINUTES. An address is locked
# only when failures for AXES_IP_USERNAME_LIMIT different usernames come from it in that time
# (someone trying many accounts), so one mistyping colleague never locks out an office behind
# one NAT address (accounts.lockout.LockoutHandler).
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_IP_USERNAME_LIMIT = env.int("AXES_IP_USERNAME_LIMIT", default=20)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_HANDLER = "accounts.lockout.LockoutHandler"
AXES_USE_ATTEMPT_EXPIRATION = True
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "accounts.views.lockout_response"
# The client address is REMOTE_ADDR, which a client cannot forge: `make run` trusts no
# forwarded headers. Behind a reverse proxy, FORWARDED_ALLOW_IPS names the proxy, and uvicorn
# then takes the client's address from its X-Forwarded-For (README, "Behind a proxy").
AXES_VERBOSE = False

# Rate limits on account actions that send email or probe for accounts (django-ratelimit, on
# the default cache: set REDIS_URL, or CACHE_URL, to a shared one when running several
# workers). Rates are "COUNT/PERIOD" with PERIOD s, m, h or d ("5/h", "20/15m").
# Emails chatter sends to one address (verification links, password resets, notices):
RATE_LIMIT_EMAILS_PER_ADDRESS = env.str("RATE_LIMIT_EMAILS_PER_ADDRESS", default="5/h")
# Sign-ups, password resets, new links and address changes asked for from one client address:
RATE_LIMIT_ACTIONS_PER_IP = env.str("RATE_LIMIT_ACTIONS_PER_IP", default="20/h")
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"

# Background work (emails leave off the request path, so a request takes the same time
# whatever it sends): Django's tasks framework. The default runs tasks in a thread pool in
# the web process (nothing to install; `make run`). To scale out, use the database backend
# and run workers: TASKS_BACKEND=django_tasks_db.DatabaseBackend and `manage.py db_worker`.
TASKS = {"default": {"BACKEND": env.str("TASKS_BACKEND", default="django_tasks_local.ThreadPoolBackend")}}

# Email: the console in development; EMAIL_URL (smtp+tls://user:pass@host:587) in production.
# Django 6.1 configures mail through MAILERS.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="chatter <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
_email = env.email_url("EMAIL_URL", default="consolemail://")
_smtp_options = {
    "host": _email.get("EMAIL_HOST"),
    "port": _email.get("EMAIL_PORT"),
    "username": _email.get("EMAIL_HOST_USER"),
    "password": _email.get("EMAIL_HOST_PASSWORD"),
    "use_tls": _email.get("EMAIL_USE_TLS", False),
    "use_ssl": _email.get("EMAIL_USE_SSL", False),
    "timeout": 10,
}
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend":
    _email["EMAIL_BACKEND"] = "accounts.mail.ConsoleBackend"  # links printed whole, not quoted-printable
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": (
            {k: v for k, v in _smtp_options.items() if v is not None}
            if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
            else {}
        ),
    }
}

# AI models (aimodels app). Azure API versions an admin may choose, comma-separated: from the
# environment only (.env.example lists the current ones), none when unset.
AZURE_API_VERSIONS = env.list("AZURE_API_VERSIONS", default=[])
# Calls to the provider: seconds to connect, seconds to wait for each read (the first token
# of a reasoning model can take a while), retries of a failed call (the SDK honours
# Retry-After, so each retry can wait that long), and the shorter timeout of the admin's
# "Test connection" and "Import models" actions.
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=5.0)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", default=120.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=1)
LLM_PROBE_TIMEOUT = env.float("LLM_PROBE_TIMEOUT", default=20.0)
# seed_models: an Azure model when AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT are set,
# and the models of a local Ollama when OLLAMA_BASE_URL is set. API keys are not settings: a
# model names the environment variable that holds its key, read when a request is sent.
AZURE_OPENAI_ENDPOINT = env.str("AZURE_OPENAI_ENDPOINT", default="")
AZURE_OPENAI_DEPLOYMENT = env.str("AZURE_OPENAI_DEPLOYMENT", default="")
AZURE_OPENAI_API_VERSION = env.str("AZURE_OPENAI_API_VERSION", default=next(iter(AZURE_API_VERSIONS), ""))
AZURE_OPENAI_API_KEY_ENV = env.str("AZURE_OPENAI_API_KEY_ENV", default="AZURE_OPENAI_API_KEY")
OLLAMA_BASE_URL = env.str("OLLAMA_BASE_URL", default="")

# Under ASGI, requests for pages and forms (synchronous views, each using a database connection
# while it runs) run at most this many at once per worker; the rest wait in order, and one that
# waited SYNC_VIEWS_WAIT seconds is answered 503. Replies' streams do not count. 45 s: a crowd's
# burst waits its turn rather than being refused, and the answer still comes before the 60 s a
# reverse proxy gives a request by default (nginx's proxy_read_timeout).
def sync_views_from_env(env: environ.Env) -> tuple[int, float]:
    at_once, wait = env.int("SYNC_VIEWS_AT_ONCE", default=16), env.float("SYNC_VIEWS_WAIT", default=45.0)
    if at_once < 1 or not wait > 0:
        raise ImproperlyConfigured(
            f"SYNC_VIEWS_AT_ONCE must be 1 or more and SYNC_VIEWS_WAIT more than 0 seconds; got {at_once} and {wait:g}."
        )
    return at_once, wait


SYNC_VIEWS_AT_ONCE, SYNC_VIEWS_WAIT = sync_views_from_env(env)

# Conversations: the longest message a user may send, in characters.
MESSAGE_MAX_LENGTH = env.int("MESSAGE_MAX_LENGTH", default=32_000)
# Sending: at most this many messages per user (django-ratelimit in the cache: shared across
# workers with REDIS_URL or CACHE_URL), and at most this many replies being written at once per user.
SEND_RATE_PER_USER = env.str("SEND_RATE_PER_USER", default="20/m")
REPLIES_AT_ONCE_PER_USER = env.int("REPLIES_AT_ONCE_PER_USER", default=2)
# Share links' public pages opened from one client address (found or not), "COUNT/PERIOD" in the cache.
SHARE_VIEWS_PER_IP = env.str("SHARE_VIEWS_PER_IP", default="60/m")
# After a new conversation's first reply, ask its model for a title of a few words (one small
# request, off the reply's path); until then, and without it, the first words are the title.
GENERATED_TITLES = env.bool("GENERATED_TITLES", default=True)
# Web lookups ("search for ...", "what's the weather in ...", "summarize <url>", and the same as
# tools for models flagged as supporting them): on unless turned off here for the deployment
# (each conversation has its own switch too). Where to look is configuration: {query} and
# {place} are replaced by the query or place, quoted with urllib.parse.quote; the answers must
# have the structure of DuckDuckGo's HTML results and wttr.in's j1 JSON (the parsers read them).
# These two addresses are the operator's, so their host may be private (a mirror or a proxy);
# a page a user or a model names is fetched only from public addresses, unless its address is
# in one of LOOKUP_ALLOWED_NETWORKS (CIDRs, e.g. an intranet wiki: 10.1.2.0/24; none by default).
WEB_LOOKUPS = env.bool("WEB_LOOKUPS", default=True)
SEARCH_URL = env.str("SEARCH_URL", default="https://html.duckduckgo.com/html/?q={query}")
WEATHER_URL = env.str("WEATHER_URL", default="https://wttr.in/{place}?format=j1")
LOOKUP_ALLOWED_NETWORKS = env.list("LOOKUP_ALLOWED_NETWORKS", default=[])
# The largest request body accepted, in bytes, on every URL: a larger one is refused with 413
# before it is read (chatter.limits, in front of Django), and Django's own limit is the same.
# The default fits the longest message sent the costliest way: htmx sends the form urlencoded,
# a character is at most 4 bytes of UTF-8 and each byte at most 3 (%XX), so 12 bytes a
# character; plus 16 KiB for the other fields (CSRF token, model) and the names. 400,384 bytes.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=MESSAGE_MAX_LENGTH * 4 * 3 + 16 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

# Internationalisation
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Static files, served by servestatic (async-capable) without a separate web server.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}

# Security headers. The Content-Security-Policy allows no inline script, style or handler:
# scripts come from 'self' or carry the per-request nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # the token reaches htmx through hx-headers, never the cookie
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SILENCED_SYSTEM_CHECKS = [
    # axes.W006 wants 'ip_address' among AXES_LOCKOUT_PARAMETERS so that rotating user agents
    # cannot dodge a lockout. Here a username locks whatever the agent or address, and an address
    # locks on many usernames (accounts.lockout), agents ignored: both tested in test_lockout.
    "axes.W006",
    # security.W021: HSTS preload is an opt-in commitment (a browser-shipped list that is
    # slow to leave), so it stays off unless SECURE_HSTS_PRELOAD is set.
    *([] if env.bool("SECURE_HSTS_PRELOAD", default=False) else ["security.W021"]),
    # security.W001-W003 look for Django's security, clickjacking and CSRF middleware by path;
    # MIDDLEWARE has chatter's async subclasses of them, which chatter.checks requires instead.
    "security.W001",
    "security.W002",
    "security.W003",
]

# Logging: readable lines on the console; a rotating file as well when LOG_FILE is set.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FILE = env.str("LOG_FILE", default="")
# A request refused for what the client sent (too large, too many fields, not UTF-8...) is one
# WARNING line, not a traceback (chatter/logging.py): on the loggers Django writes those to, so
# every handler sees the one line, and on each handler for any other django.security.* logger.
_REFUSAL_LOGGERS = [
    "django.request",
    *(f"django.security.{name}" for name in (
        "RequestDataTooBig", "TooManyFieldsSent", "TooManyFilesSent", "SuspiciousMultipartForm", "DisallowedHost",
    )),
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line_refusals": {"()": "chatter.logging.OneLineRefusals"}},
    "formatters": {
        "plain": {
            "format": "{asctime} {levelname:<7} {name}: {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["one_line_refusals"]},
        **(
            {
                "file": {
                    "class": "logging.handlers.RotatingFileHandler",
                    "filename": LOG_FILE,
                    "maxBytes": 10 * 1024 * 1024,
                    "backupCount": 5,
                    "formatter": "plain",
                    "filters": ["one_line_refusals"],
                    "encoding": "utf-8",
                }
            }
            if LOG_FILE
            else {}
        ),
    },
    "root": {"handlers": ["console", *(["file"] if LOG_FILE else [])], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "psycopg.pool": {"level": "WARNING"},  # INFO is three lines per request
        "axes": {"level": "WARNING"},
        **{name: {"filters": ["one_line_refusals"]} for name in _REFUSAL_LOGGERS},
    },
}
