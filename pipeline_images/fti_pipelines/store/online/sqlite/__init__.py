"""The SQLite online-store backend (URI sqlite:///abs/path.db): store.py, write.py, reader.py, schema.py."""

from .store import SqliteOnlineStore

__all__ = ["SqliteOnlineStore"]
