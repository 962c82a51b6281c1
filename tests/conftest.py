"""Root conftest: registers the shared fixture plugins (tests/ is on sys.path)."""

pytest_plugins = ["support.redis_server", "support.s3_server", "support.online_stores"]
