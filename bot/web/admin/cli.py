"""``rapport admin create-user`` / ``set-password``: admin page users from the command line.

The argparse lines live in ``bot/cli.py`` (``admin`` with ``create-user USERNAME --role --name
--clinician`` and ``set-password USERNAME``); this is what they run. ``--clinician`` is the
``clinicians`` id in config.yaml that a clinician-role user is scoped to."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime

from bot.web.admin.auth import MIN_PASSWORD, UserError, create_user, set_password

PASSWORD_ENV = "RAPPORT_ADMIN_PASSWORD"


def _password() -> str:
    """From ``RAPPORT_ADMIN_PASSWORD`` (scripts, CI), else asked twice on the terminal."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise UserError(f"password: set {PASSWORD_ENV} or run from a terminal")
    first = getpass.getpass(f"Password (at least {MIN_PASSWORD} characters): ")
    if getpass.getpass("Again: ") != first:
        raise UserError("password: the two entries differ")
    return first


def run_admin(args: argparse.Namespace) -> int:
    from bot.config import load_config
    from storage.db import make_engine, resolve_url
    from storage.migrate import upgrade_url

    cfg, path = load_config(args.config)
    url = resolve_url(cfg.database_url, path)
    upgrade_url(url)
    db = make_engine(url)
    try:
        password = _password()
        if args.admin_command == "create-user":
            known = [c.id for c in cfg.clinicians] or None
            u = create_user(
                db,
                args.username,
                password,
                args.role,
                datetime.now(UTC),
                name=args.name,
                clinician=getattr(args, "clinician", None),
                known_clinicians=known,
            )
            print(f"created {u.role} {u.username}" + (f" (clinician {u.clinician})" if u.clinician else ""))
        else:
            set_password(db, args.username, password)
            print(f"password set for {args.username.strip().lower()}")
    except UserError as e:
        print(f"rapport: {e}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    return 0
