"""What an evaluator may do next, and the checks on every rating, apart from HTTP (the server only renders).

An evaluator rates one set at a time, at most ``max_sets`` sets, each a set they have not seen, the least-rated one
first (so ratings spread evenly over the sets). A set's pairs are shown in a fresh random order, each pair's two
images in a random left/right order, both recorded when the set is given. A rating is taken only for the pair on
screen, once, from 1 to 5, and only while the evaluator has not finished; anything else is :class:`Refused` with
one line saying why.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import time
from dataclasses import dataclass

from advdf.assess.db import RatingsDB
from advdf.assess.study import Study
from advdf.errors import ConfigError

_RNG = random.SystemRandom()  # orders and sides: unpredictable, so nobody can tell a pair's reference side


class Refused(Exception):
    """A request the study must not take: ``status`` (HTTP code) and one line for the evaluator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Screen:
    """What an evaluator's page shows.

    Attributes:
        kind: ``pair`` (rate the pair ``item``), ``between`` (a set is done, another may follow) or ``finished``.
        code: the completion code (shown once a set is done).
        item: the shown pair's opaque id (``pair`` only).
        position: 1-based place of the pair in its set; ``total``: pairs in the set.
        sets_done: sets completed; ``set_number``: the set being rated (1-based).
        more: whether another set may be started (``between``).
    """

    kind: str
    code: str
    item: str | None = None
    position: int = 0
    total: int = 0
    sets_done: int = 0
    set_number: int = 0
    more: bool = False


class Sessions:
    """The evaluators of ``study``, their sets and ratings in ``db``; at most ``max_sets`` sets each."""

    def __init__(self, study: Study, db: RatingsDB, max_sets: int) -> None:
        if not isinstance(max_sets, int) or isinstance(max_sets, bool) or max_sets < 1:
            raise ConfigError(f"max_sets_per_evaluator (K) must be a positive integer, got {max_sets!r}")
        self.study, self.db, self.max_sets = study, db, max_sets

    # --- lookups --------------------------------------------------------------------------------------------
    @staticmethod
    def _evaluator(conn: sqlite3.Connection, token: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM evaluators WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise Refused(404, "unknown evaluator: start from the study's first page")
        return row

    @staticmethod
    def _current(conn: sqlite3.Connection, evaluator: int) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM assignments WHERE evaluator = ? AND completed IS NULL",
                            (evaluator,)).fetchone()

    def _next_set(self, conn: sqlite3.Connection, evaluator: int) -> int | None:
        """The least-given set this evaluator has not had (lowest index first), or None."""
        had = {r[0] for r in conn.execute("SELECT set_index FROM assignments WHERE evaluator = ?", (evaluator,))}
        given = dict(conn.execute("SELECT set_index, COUNT(*) FROM assignments GROUP BY set_index").fetchall())
        free = [i for i in range(len(self.study.sets)) if i not in had]
        return min(free, key=lambda i: (given.get(i, 0), i)) if free else None

    def _sets_done(self, conn: sqlite3.Connection, evaluator: int) -> int:
        return conn.execute("SELECT COUNT(*) FROM assignments WHERE evaluator = ? AND completed IS NOT NULL",
                            (evaluator,)).fetchone()[0]

    def _may_continue(self, conn: sqlite3.Connection, evaluator: int) -> bool:
        return self._sets_done(conn, evaluator) < self.max_sets and self._next_set(conn, evaluator) is not None

    # --- actions --------------------------------------------------------------------------------------------
    def start(self) -> str:
        """A new evaluator with their first set; returns their token."""
        token = self.db.new_evaluator()
        self.next_set(token)
        return token

    def next_set(self, token: str) -> None:
        """Give the evaluator another set; refused while one is unfinished, after K sets, or when none is left."""
        with self.db.transaction() as conn:
            ev = self._evaluator(conn, token)
            if ev["finished"] is not None:
                raise Refused(409, "this evaluator has finished: no more sets")
            if self._current(conn, ev["id"]) is not None:
                raise Refused(409, "finish the set on screen first")
            if not self._may_continue(conn, ev["id"]):
                raise Refused(409, f"no more sets for this evaluator (at most {self.max_sets}, each once)")
            index = self._next_set(conn, ev["id"])
            cur = conn.execute("INSERT INTO assignments (evaluator, set_index, started) VALUES (?, ?, ?)",
                               (ev["id"], index, time.time()))
            pairs = list(self.study.sets[index])
            _RNG.shuffle(pairs)
            conn.executemany("INSERT INTO items (item, assignment, position, pair, swapped) VALUES (?, ?, ?, ?, ?)",
                             [(secrets.token_urlsafe(12), cur.lastrowid, k, p, _RNG.randint(0, 1))
                              for k, p in enumerate(pairs)])

    def finish(self, token: str) -> None:
        """End the evaluator's participation (a set on screen stays unfinished and counts as not done)."""
        with self.db.transaction() as conn:
            ev = self._evaluator(conn, token)
            if ev["finished"] is None:
                conn.execute("UPDATE evaluators SET finished = ? WHERE id = ?", (time.time(), ev["id"]))

    def rate(self, token: str, item: str, rating: str | int) -> None:
        """Record ``rating`` for the shown pair ``item``, in one transaction; :class:`Refused` when it must not be."""
        with self.db.transaction() as conn:
            ev = self._evaluator(conn, token)
            if ev["finished"] is not None:
                raise Refused(409, "this evaluator has finished: no more ratings are taken")
            text = str(rating).strip()
            if text not in ("1", "2", "3", "4", "5"):
                raise Refused(400, f"a rating is an integer from 1 to 5, got {str(rating)[:20]!r}")
            row = conn.execute("SELECT i.*, r.rating FROM items i JOIN assignments a ON a.id = i.assignment "
                               "LEFT JOIN ratings r ON r.item = i.id WHERE i.item = ? AND a.evaluator = ?",
                               (str(item)[:64], ev["id"])).fetchone()
            if row is None:
                raise Refused(403, "unknown pair id: it was not shown to this evaluator")
            if row["rating"] is not None:
                raise Refused(409, "this pair is already rated (a repeated request); its first rating stands")
            current = self._current(conn, ev["id"])
            first = None if current is None else self._first_unrated(conn, current["id"])
            if first is None or first["id"] != row["id"]:
                raise Refused(409, "this pair is not the one on screen")
            conn.execute("INSERT INTO ratings (item, rating, rated) VALUES (?, ?, ?)", (row["id"], int(text), time.time()))
            if self._first_unrated(conn, current["id"]) is None:
                conn.execute("UPDATE assignments SET completed = ? WHERE id = ?", (time.time(), current["id"]))
                if not self._may_continue(conn, ev["id"]):
                    conn.execute("UPDATE evaluators SET finished = ? WHERE id = ?", (time.time(), ev["id"]))

    @staticmethod
    def _first_unrated(conn: sqlite3.Connection, assignment: int) -> sqlite3.Row | None:
        return conn.execute("SELECT i.* FROM items i LEFT JOIN ratings r ON r.item = i.id WHERE i.assignment = ? "
                            "AND r.item IS NULL ORDER BY i.position LIMIT 1", (assignment,)).fetchone()

    # --- what to show ---------------------------------------------------------------------------------------
    def screen(self, token: str) -> Screen:
        with self.db.connect() as conn:
            ev = self._evaluator(conn, token)
            done = self._sets_done(conn, ev["id"])
            if ev["finished"] is not None:
                return Screen("finished", ev["code"], sets_done=done)
            current = self._current(conn, ev["id"])
            if current is None:
                return Screen("between", ev["code"], sets_done=done, more=self._may_continue(conn, ev["id"]))
            item = self._first_unrated(conn, current["id"])
            total = conn.execute("SELECT COUNT(*) FROM items WHERE assignment = ?", (current["id"],)).fetchone()[0]
            return Screen("pair", ev["code"], item=item["item"], position=item["position"] + 1, total=total,
                          sets_done=done, set_number=done + 1)

    def image(self, token: str, item: str, side: str):
        """The PNG shown on ``side`` (``left`` / ``right``) of one of the evaluator's pairs."""
        if side not in ("left", "right"):
            raise Refused(404, "no such image")
        with self.db.connect() as conn:
            ev = self._evaluator(conn, token)
            row = conn.execute("SELECT i.pair, i.swapped FROM items i JOIN assignments a ON a.id = i.assignment "
                               "WHERE i.item = ? AND a.evaluator = ?", (str(item)[:64], ev["id"])).fetchone()
        if row is None:
            raise Refused(404, "no such image")
        ref_on_left = not row["swapped"]
        which = "ref" if (side == "left") == ref_on_left else "test"
        return self.study.image(row["pair"], which)
