"""Root conftest: registers the shared fixture plugins."""

pytest_plugins: list[str] = []
