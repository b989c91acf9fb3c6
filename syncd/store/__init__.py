"""The state store: SQLite (or any SQLAlchemy database) holding every file's state and history.

The database is the queue. Open it with :func:`open_store`; read and write it only through the
functions of :mod:`syncd.store.repo`, which take a Session from :meth:`Store.session` and return
frozen records (:mod:`syncd.store.records`).
"""

from syncd.store.db import Store, open_store

__all__ = ["Store", "open_store"]
