"""The `rapport` command line. Every command takes --config (default ./config.yaml or RAPPORT_CONFIG)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bot.config import ConfigError, load_config


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="config file (default: ./config.yaml or $RAPPORT_CONFIG)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rapport", description="Client-engagement bot for therapy practices.")
    _config_arg(ap)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="web app + scheduler + outbox worker")
    _config_arg(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--role", choices=("all", "web", "worker"), default="all")
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="share --port with other rapport serve processes (SO_REUSEPORT, PostgreSQL only); the kernel "
        "spreads connections among them",
    )
    p.add_argument("--telegram-polling", action="store_true", help="long-poll Telegram instead of a webhook")

    p = sub.add_parser("link", help="print a single-use Telegram deep link that ties a chat to a client")
    _config_arg(p)
    p.add_argument("client", help="the client's id")
    p.add_argument("--ttl", default=None, help="how long the link works, e.g. 72h or 3d (default 72h)")

    p = sub.add_parser("simulate", help="run JSONL scenarios on a virtual clock (stdin -> stdout)")
    _config_arg(p)

    p = sub.add_parser("chat", help="talk to Rapport as a demo client in the terminal")
    _config_arg(p)
    p.add_argument("--lang", default=None)

    p = sub.add_parser("nlu", help="understanding")
    _config_arg(p)
    nsub = p.add_subparsers(dest="nlu_command", required=True)
    q = nsub.add_parser("parse", help="JSONL in, intents and dates out")
    _config_arg(q)

    p = sub.add_parser("safety", help="crisis detection")
    _config_arg(p)
    ssub = p.add_subparsers(dest="safety_command", required=True)
    q = ssub.add_parser("scan", help="JSONL in, crisis levels out")
    _config_arg(q)

    p = sub.add_parser("db", help="database")
    _config_arg(p)
    dsub = p.add_subparsers(dest="db_command", required=True)
    q = dsub.add_parser("upgrade", help="apply migrations (alembic upgrade head)")
    _config_arg(q)
    q.add_argument("--revision", default="head")

    p = sub.add_parser("scripts", help="dialogue scripts and catalogs")
    _config_arg(p)
    csub = p.add_subparsers(dest="scripts_command", required=True)
    q = csub.add_parser("check", help="validate dialogues and catalogs")
    _config_arg(q)
    q = csub.add_parser("diagram", help="Mermaid diagrams of the dialogues (Markdown on stdout)")
    _config_arg(q)

    p = sub.add_parser("import", help="load the practice's schedule")
    _config_arg(p)
    isub = p.add_subparsers(dest="import_command", required=True)
    q = isub.add_parser("appointments", help="import a CSV or iCalendar (.ics) file (docs/records.md)")
    _config_arg(q)
    q.add_argument("file")
    q.add_argument("--skip-bad", action="store_true", help="import the good rows even when some are bad")
    q.add_argument("--dry-run", action="store_true", help="check and report what would change; write nothing")
    q.add_argument("--prune", action="store_true", help="cancel upcoming appointments this source no longer lists")
    q.add_argument("--source", default=None, help="the feed's name (default: the format and the file name)")
    q.add_argument(
        "--horizon", default="26w", help="how far ahead recurring iCalendar events become sessions (default 26w)"
    )

    p = sub.add_parser("records", help="records policy: purge, export, key rotation")
    _config_arg(p)
    rsub = p.add_subparsers(dest="records_command", required=True)
    q = rsub.add_parser("purge", help="delete what is older than records.keep_for")
    _config_arg(q)
    q.add_argument("--dry-run", action="store_true", help="count what would be deleted")
    q = rsub.add_parser("export", help="everything held about one client, as JSON")
    _config_arg(q)
    q.add_argument("client")
    q.add_argument("--output", default=None, help="write to this file instead of stdout")
    q = rsub.add_parser("rotate-key", help="re-encrypt stored message text with the newest RAPPORT_DATA_KEY key")
    _config_arg(q)
    q = rsub.add_parser("delete", help="delete one client everywhere, on their request (docs/records.md)")
    _config_arg(q)
    q.add_argument("client")
    q.add_argument("--yes", action="store_true", help="really delete (without it: say what would be deleted)")

    p = sub.add_parser("admin", help="users of the admin pages")
    _config_arg(p)
    asub = p.add_subparsers(dest="admin_command", required=True)
    q = asub.add_parser(
        "create-user", help="create an admin page user (password from $RAPPORT_ADMIN_PASSWORD, else asked twice)"
    )
    _config_arg(q)
    q.add_argument("username")
    q.add_argument("--role", choices=("admin", "clinician"), default="clinician")
    q.add_argument("--name", default="", help="the name shown on pages and in the audit log")
    q.add_argument("--clinician", default=None, help="the clinicians id (config.yaml) a clinician-role user sees")
    q = asub.add_parser("set-password", help="set a user's password (ends their sessions)")
    _config_arg(q)
    q.add_argument("username")

    p = sub.add_parser("rasa", help="Rasa NLU integration")
    _config_arg(p)
    rsub = p.add_subparsers(dest="rasa_command", required=True)
    q = rsub.add_parser("export", help="write a Rasa project from the locale examples")
    _config_arg(q)
    q.add_argument("dir")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return _dispatch(args)
    except ConfigError as e:
        print(f"rapport: invalid config: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "simulate":
        from bot.simulate import run_simulate

        load_config(args.config)  # an invalid file stops here with one clear line
        return run_simulate(sys.stdin, sys.stdout, args.config)
    if cmd == "chat":
        from bot.chat import run_chat

        return run_chat(args.config, args.lang)
    if cmd == "nlu":
        from bot.understanding import make_parser, run_parse_cli, warm_up

        cfg, _ = load_config(args.config)
        warm_up()  # load every language and dateparser now: the first lines are as fast as the rest
        return run_parse_cli(
            sys.stdin, sys.stdout, make_parser(cfg.nlu.backend, cfg.nlu.rasa_url, cfg.nlu.timeout.total_seconds())
        )
    if cmd == "safety":
        from bot.safety import run_scan_cli

        return run_scan_cli(sys.stdin, sys.stdout)
    if cmd == "db":
        from storage.migrate import upgrade

        cfg, path = load_config(args.config)
        return upgrade(cfg, path, args.revision)
    if cmd == "scripts" and args.scripts_command == "diagram":
        from bot.scripts_diagram import document

        sys.stdout.write(document())
        return 0
    if cmd == "scripts":
        from bot.scripts_check import run_check

        cfg, path = load_config(args.config)
        return run_check(cfg, path, sys.stdout)
    if cmd == "import":
        from bot.imports import run_import

        cfg, path = load_config(args.config)
        from bot.durations import parse_duration

        try:
            horizon = parse_duration(args.horizon)
        except ValueError as e:
            print(f"rapport import: --horizon: {e}", file=sys.stderr)
            return 2
        return run_import(
            cfg,
            path,
            args.file,
            args.skip_bad,
            args.dry_run,
            args.prune,
            sys.stdout,
            sys.stderr,
            source=args.source,
            horizon=horizon,
        )
    if cmd == "records":
        from bot.retention import run_records
        from storage.db import resolve_url

        cfg, path = load_config(args.config)
        return run_records(
            resolve_url(cfg.database_url, path),
            cfg.records,
            args.records_command,
            sys.stdout,
            sys.stderr,
            client=getattr(args, "client", None),
            output=getattr(args, "output", None),
            dry_run=getattr(args, "dry_run", False),
            yes=getattr(args, "yes", False),
        )
    if cmd == "rasa":
        from pathlib import Path

        from bot.understanding import export_rasa_project

        export_rasa_project(Path(args.dir))
        print(f"wrote a Rasa project to {args.dir}")
        return 0
    if cmd == "admin":
        from bot.web.admin.cli import run_admin

        return run_admin(args)
    if cmd == "link":
        from bot.server import run_link

        return run_link(args)
    if cmd == "serve":
        from bot.server import run_serve

        return run_serve(args)
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    raise SystemExit(main())
