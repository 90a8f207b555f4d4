"""The ratings of a study in SQLite: evaluators, the sets they were given, what each saw and rated.

Write-ahead logging with ``synchronous=FULL`` and one ``BEGIN IMMEDIATE`` transaction per rating: a committed rating
survives a crash of the server (or of the machine), so a crash loses at most the pair on screen, and concurrent
requests of one evaluator are serialized, so a pair is never rated twice. The schema enforces what the server
checks (a rating in 1-5, one rating per shown pair) as a second line of defence.

Evaluators are anonymous: a random token (their only credential, in their page's address) and a completion code.
Nothing about the person, their address or browser is stored.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluators (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY,
    evaluator INTEGER NOT NULL REFERENCES evaluators(id),
    set_index INTEGER NOT NULL,
    started REAL NOT NULL,
    completed REAL,
    UNIQUE (evaluator, set_index)
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    item TEXT NOT NULL UNIQUE,
    assignment INTEGER NOT NULL REFERENCES assignments(id),
    position INTEGER NOT NULL,
    pair TEXT NOT NULL,
    swapped INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    UNIQUE (assignment, position)
);
CREATE TABLE IF NOT EXISTS ratings (
    item INTEGER PRIMARY KEY REFERENCES items(id),
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    rated REAL NOT NULL
);
"""

# One row per rating, with what the report needs: who (a number, never the token: it is their credential), which
# set, which pair, how it was shown, the score.
RATINGS_QUERY = """
SELECT e.id AS evaluator, a.set_index AS set_index, i.position AS position, i.pair AS pair,
       i.swapped AS swapped, r.rating AS rating, r.rated AS rated
FROM ratings r JOIN items i ON i.id = r.item JOIN assignments a ON a.id = i.assignment
JOIN evaluators e ON e.id = a.evaluator
ORDER BY e.id, a.set_index, i.position
"""


class RatingsDB:
    """The ratings database of one study at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own (one per request: the server's threads share nothing), closed afterwards."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``); committed on success, rolled back otherwise."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def new_evaluator(self) -> str:
        """A fresh anonymous evaluator; returns their token."""
        token = secrets.token_urlsafe(18)
        with self.transaction() as conn:
            conn.execute("INSERT INTO evaluators (token, code, created) VALUES (?, ?, ?)",
                         (token, secrets.token_hex(4).upper(), time.time()))
        return token

    def ratings(self) -> list[dict]:
        """Every rating (see :data:`RATINGS_QUERY`)."""
        with self.connect() as conn:
            return [dict(r) for r in conn.execute(RATINGS_QUERY)]

    def counts(self) -> dict[str, int]:
        with self.connect() as conn:
            one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
            return {"evaluators": one("SELECT COUNT(*) FROM evaluators"),
                    "finished": one("SELECT COUNT(*) FROM evaluators WHERE finished IS NOT NULL"),
                    "sets_started": one("SELECT COUNT(*) FROM assignments"),
                    "sets_completed": one("SELECT COUNT(*) FROM assignments WHERE completed IS NOT NULL"),
                    "ratings": one("SELECT COUNT(*) FROM ratings")}
