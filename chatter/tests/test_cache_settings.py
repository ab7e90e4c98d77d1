"""Which cache the settings choose: CACHE_URL when given; else, with REDIS_URL, Django's built-in
Redis cache there (shared by every worker); else one per process. No server needed."""

import environ
import pytest
from django.core.cache import CacheHandler
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from chatter.settings import caches_from_env


@pytest.fixture
def environment(monkeypatch):
    for name in ("CACHE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_redis_url_alone_makes_the_cache_djangos_redis_cache(environment):
    environment.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")

    caches = caches_from_env(environ.Env())

    assert caches["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert caches["default"]["LOCATION"] == "redis://127.0.0.1:6390/2"
    assert isinstance(CacheHandler(caches)["default"], RedisCache)  # a valid configuration (not connected)


def test_cache_url_wins_over_redis_url(environment):
    environment.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")
    environment.setenv("CACHE_URL", "locmemcache://elsewhere")

    caches = caches_from_env(environ.Env())

    assert caches["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert caches["default"]["LOCATION"] == "elsewhere"


def test_without_either_each_process_has_its_own_cache(environment):
    caches = caches_from_env(environ.Env())

    assert isinstance(CacheHandler(caches)["default"], LocMemCache)
