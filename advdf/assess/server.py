"""The web app of a DCR study (Flask, served by waitress): the evaluators' pages and the admin's read-out.

Routes, under the configured base path (``/dcr`` behind a reverse proxy that forwards ``/dcr/...``, with or
without stripping the prefix)::

    GET  /                         instructions and a Start button
    POST /start                    a new anonymous evaluator and their first set -> /e/<token>
    GET  /e/<token>                the evaluator's page: the pair on screen, a set done, or the end
    POST /e/<token>/rate           item=<shown pair's id>&rating=<1-5>
    POST /e/<token>/next | finish  another set | stop
    GET  /e/<token>/img/<item>/<left|right>.png
    GET  /admin/ratings.csv, /admin/status.json   (Authorization: Bearer <admin token>)
    GET  /healthz

Image addresses name the evaluator's opaque pair id and a side, never the pair or which image is the reference.
Every page is sent with ``Referrer-Policy: no-referrer`` (a token in an address must not leak to other sites) and
``Cache-Control: no-store``.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, redirect, render_template, request, send_file, url_for
from jinja2 import DictLoader

from advdf.assess.db import RatingsDB
from advdf.assess.page import DCR_LABELS, TEMPLATES
from advdf.assess.session import Refused, Sessions
from advdf.assess.study import Study
from advdf.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    """How a study is served.

    Args:
        host, port: where to listen (``127.0.0.1``: only a reverse proxy on the same machine reaches it).
        base_path: the path prefix the app is reached under ('' or e.g. ``/dcr``).
        max_sets_per_evaluator: K, the sets one evaluator may rate (seed 002: 5).
        admin_token: the token that reads results; ``None``: one generated into ``<study>/admin_token``.
        display_px: the largest width an image is shown at (small crops are enlarged without smoothing).
        threads: waitress worker threads.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    base_path: str = ""
    max_sets_per_evaluator: int = 5
    admin_token: str | None = None
    display_px: int = 320
    threads: int = 8

    def __post_init__(self) -> None:
        if self.base_path and (not self.base_path.startswith("/") or self.base_path.endswith("/")):
            raise ConfigError(f"server.base_path must be '' or start with / and not end with one (e.g. /dcr), "
                              f"got {self.base_path!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"server.port must be an integer in [0, 65535], got {self.port!r}")
        if not isinstance(self.max_sets_per_evaluator, int) or self.max_sets_per_evaluator < 1:
            raise ConfigError(f"server.max_sets_per_evaluator (K) must be a positive integer, got "
                              f"{self.max_sets_per_evaluator!r}")
        if self.admin_token is not None and len(str(self.admin_token)) < 16:
            raise ConfigError("server.admin_token must be at least 16 characters (or null: one is generated)")


class BasePath:
    """WSGI middleware: the app lives under ``prefix`` (SCRIPT_NAME, so generated addresses carry it), whether the
    proxy in front forwards the prefix or strips it."""

    def __init__(self, app, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    def __call__(self, environ, start_response):
        if self.prefix:
            path = environ.get("PATH_INFO", "")
            if path == self.prefix or path.startswith(self.prefix + "/"):
                path = path[len(self.prefix):]
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = self.prefix, path or "/"
        return self.app(environ, start_response)


def admin_token(study: Study, settings: ServerSettings) -> str:
    """The configured admin token, else the one in ``<study>/admin_token`` (created, owner-only, on first use)."""
    if settings.admin_token:
        return str(settings.admin_token)
    path = study.directory / "admin_token"
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def ratings_csv(study: Study, db: RatingsDB) -> str:
    """Every rating with its pair's condition (the admin's export and the report's input)."""
    buf = io.StringIO()
    fields = ["evaluator", "set_index", "position", "pair", "condition", "swapped", "rating", "rated"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in db.ratings():
        writer.writerow({**r, "condition": study.pairs[r["pair"]]["condition"]})
    return buf.getvalue()


def create_app(study: Study, settings: ServerSettings, db: RatingsDB | None = None) -> Flask:
    """The study's Flask app, its WSGI callable wrapped in :class:`BasePath` (``app.test_client()`` goes through
    it too)."""
    db = db or RatingsDB(study.db_path)
    sessions = Sessions(study, db, settings.max_sets_per_evaluator)
    secret = admin_token(study, settings)
    app = Flask(__name__)
    app.jinja_env.loader = DictLoader(TEMPLATES)
    app.config["MAX_CONTENT_LENGTH"] = 4096
    labels = sorted(DCR_LABELS.items(), reverse=True)
    common = {"title": "Image quality test", "display_px": settings.display_px, "labels": labels,
              "max_sets": settings.max_sets_per_evaluator}

    @app.errorhandler(Refused)
    def refused(err: Refused):
        token = request.view_args.get("token") if request.view_args else None
        return render_template("error.html", message=str(err), token=token, page_id="error", **common), err.status

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def instructions():
        return render_template("instructions.html", per_set=len(study.sets[0]) if study.sets else 0,
                               page_id="instructions", **common)

    @app.post("/start")
    def start():
        return redirect(url_for("evaluator", token=sessions.start()), code=303)

    @app.get("/e/<token>")
    def evaluator(token: str):
        s = sessions.screen(token)
        return render_template(f"{s.kind}.html", s=s, token=token, page_id=f"{s.kind}:{s.item or s.sets_done}",
                               **common)

    @app.post("/e/<token>/rate")
    def rate(token: str):
        sessions.rate(token, request.form.get("item", ""), request.form.get("rating", ""))
        return redirect(url_for("evaluator", token=token), code=303)

    @app.post("/e/<token>/next")
    def next_set(token: str):
        sessions.next_set(token)
        return redirect(url_for("evaluator", token=token), code=303)

    @app.post("/e/<token>/finish")
    def finish(token: str):
        sessions.finish(token)
        return redirect(url_for("evaluator", token=token), code=303)

    @app.get("/e/<token>/img/<item>/<side>.png")
    def image(token: str, item: str, side: str):
        return send_file(sessions.image(token, item, side), mimetype="image/png", max_age=0)

    def require_admin() -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            abort(Response("admin token required (Authorization: Bearer <token>)\n", 401,
                           {"WWW-Authenticate": "Bearer"}))
        if not hmac.compare_digest(auth[7:].strip().encode(), secret.encode()):
            abort(Response("wrong admin token\n", 403))

    @app.get("/admin/ratings.csv")
    def admin_ratings():
        require_admin()
        return Response(ratings_csv(study, db), mimetype="text/csv")

    @app.get("/admin/status.json")
    def admin_status():
        require_admin()
        return {"study": study.name, "sets": len(study.sets), **db.counts()}

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "study": study.name}

    wrapped = BasePath(app.wsgi_app, settings.base_path)
    app.wsgi_app = wrapped
    return app


def serve(study: Study, settings: ServerSettings) -> None:
    """Serve ``study`` until interrupted (waitress, ``settings.threads`` threads)."""
    from waitress import serve as waitress_serve

    app = create_app(study, settings)
    where = f"http://{settings.host}:{settings.port}{settings.base_path}/"
    token_file = "server.admin_token" if settings.admin_token else Path(study.directory / "admin_token")
    log.info("serving study %s at %s (%d sets, K=%d; admin token: %s; ratings: %s)", study.name, where,
             len(study.sets), settings.max_sets_per_evaluator, token_file, study.db_path)
    try:
        waitress_serve(app, host=settings.host, port=settings.port, threads=settings.threads, ident="advdf-assess")
    except KeyboardInterrupt:  # every answered rating is already committed
        log.info("stopped serving study %s", study.name)
