"""The Redis online-store backend (URI redis://, rediss://, unix://): store.py, write.py, reader.py, keys.py."""

from .store import RedisOnlineStore

__all__ = ["RedisOnlineStore"]
