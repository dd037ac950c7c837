"""The ``hookbay`` command: argument parsing and dispatch. Every failure ends as one ``hookbay: ...``
line on stderr with exit code 1 (2 for usage errors), never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from hookbay_cli import output, up
from hookbay_cli.client import ACTION_RUN_STATUSES, PACKET_STATUSES, AdminClient
from hookbay_cli.errors import CliError
from hookbay_common.settings import CliSettings, CommonSettings

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and where to find help."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("hookbay").strip()
        where = f"{command}: " if command else ""
        print(f"hookbay: {where}{message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _whole(minimum: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def _port(text: str) -> int:
    value = _whole(1, "a port number (1-65535)")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return value


BYTES = _whole(0, "a whole number of bytes (0 for the default)")
LIMIT = _whole(1, "a positive whole number")


# -- context ---------------------------------------------------------------------------------------


class Context:
    """Settings read once at the edge, and the admin client made on first use."""

    def __init__(self) -> None:
        self.admin_addr = CliSettings().admin_addr
        self._client: AdminClient | None = None

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            self._client = AdminClient(self.admin_addr)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# -- commands --------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace, _ctx: Context) -> int:
    config = up.UpConfig.build(
        data_dir=args.data_dir,
        http_host=args.http_host,
        http_port=args.http_port,
        admin_port=args.admin_port,
        parser_port=args.parser_port,
        actions_port=args.actions_port,
        smtp_port=args.smtp_port,
        environ=dict(os.environ),
    )
    return up.run(config)


def cmd_migrate(_args: argparse.Namespace, _ctx: Context) -> int:
    url = CommonSettings().database_url
    up.migrate(url)
    print(f"the database at {up.safe_url(url)} is up to date")
    return 0


def cmd_sources_create(args: argparse.Namespace, ctx: Context) -> int:
    if args.secret and not args.verify:
        raise CliError("--secret needs --verify SCHEME", exit_code=2)
    if args.verify and not args.secret and args.verify not in ("basic",):
        raise CliError(f"--verify {args.verify} needs --secret", exit_code=2)
    settings = {"verify": {"scheme": args.verify, "secrets": args.secret}} if args.verify else None
    source = output.source_dict(
        ctx.client.create_source(
            name=args.name, client=args.client, fmt=args.format, max_body=args.max_body, settings=settings
        )
    )
    if args.json:
        output.print_json(source)
    else:
        output.show_source(source)
        print(f"\nSenders POST to {source['url']}")
    return 0


def cmd_sources_list(args: argparse.Namespace, ctx: Context) -> int:
    sources = [output.source_dict(s) for s in ctx.client.list_sources()]
    if args.json:
        output.print_json(sources)
    else:
        output.show_sources(sources)
    return 0


def cmd_sources_show(args: argparse.Namespace, ctx: Context) -> int:
    source = output.source_dict(ctx.client.get_source(args.name))
    if args.json:
        output.print_json(source)
    else:
        output.show_source(source)
    return 0


def _source_action(method: str, done: str) -> Callable[[argparse.Namespace, Context], int]:
    def command(args: argparse.Namespace, ctx: Context) -> int:
        source = output.source_dict(getattr(ctx.client, method)(args.name))
        if args.json:
            output.print_json(source)
        else:
            print(f"{done} {source['name']}")
        return 0

    return command


def cmd_sources_rotate(args: argparse.Namespace, ctx: Context) -> int:
    overlap = 0 if args.now else args.overlap
    source = output.source_dict(ctx.client.rotate_source(args.name, overlap))
    if args.json:
        output.print_json(source)
    else:
        print(source["url"])  # alone on stdout, so scripts can capture it
    return 0


def DURATION(text: str) -> int:
    """Seconds from '90', '30s', '15m', '24h' or '7d'."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    scale = units.get(text[-1:])
    number = text[:-1] if scale else text
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 15m, 24h or 7d)")
    return int(number) * (scale or 1)


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    # Imported here: the rule checks bring in Jinja2 and JMESPath, which no other command needs.
    from hookbay_cli import apply

    label, spec = apply.load(args.file)  # validate everything before the first call
    apply.apply(label, spec, ctx.client)
    return 0


def cmd_packets_list(args: argparse.Namespace, ctx: Context) -> int:
    packets = ctx.client.list_packets(source=args.source, status=args.status or "", limit=args.limit)
    rows = [output.packet_dict(p) for p in packets]
    if args.json:
        output.print_json(rows)
    else:
        output.show_packets(rows)
    return 0


def cmd_packets_show(args: argparse.Namespace, ctx: Context) -> int:
    packet = output.packet_dict(ctx.client.get_packet(args.id), detail=True)
    if args.json:
        output.print_json(packet)
    else:
        output.show_packet(packet)
    return 0


def cmd_packets_raw(args: argparse.Namespace, ctx: Context) -> int:
    out = sys.stdout.buffer
    for chunk in ctx.client.packet_raw(args.id):
        out.write(chunk)
    out.flush()
    return 0


def cmd_packets_reparse(args: argparse.Namespace, ctx: Context) -> int:
    if not args.ids and not args.source and not args.status:
        raise CliError(
            "packets reparse: name packet IDs, or choose packets with --source NAME and/or --status S"
            " (see `hookbay packets reparse --help`)",
            exit_code=EXIT_USAGE,
        )
    count = ctx.client.reparse_packets(ids=args.ids, source=args.source, status=args.status or "")
    print(f"queued {count} packet(s) for parsing")
    return 0


def cmd_records_list(args: argparse.Namespace, ctx: Context) -> int:
    records = ctx.client.list_records(source=args.source, packet_id=args.packet, limit=args.limit)
    rows = [output.record_dict(r) for r in records]
    if args.json:
        output.print_json(rows)
    else:
        output.show_records(rows)
    return 0


def cmd_actions_runs(args: argparse.Namespace, ctx: Context) -> int:
    rows = [
        output.action_run_dict(r)
        for r in ctx.client.list_action_runs(source=args.source, status=args.status or "", limit=args.limit)
    ]
    if args.json:
        output.print_json(rows)
    else:
        output.show_action_runs(rows)
    return 0


def cmd_actions_retry(args: argparse.Namespace, ctx: Context) -> int:
    run = output.action_run_dict(ctx.client.retry_action_run(args.id))
    if args.json:
        output.print_json(run)
    else:
        print(f"action run {run['id']} is {run['status']} again")
    return 0


# -- the parser ------------------------------------------------------------------------------------


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (a stable, documented shape)")


def _commands(parser: argparse.ArgumentParser, title: str) -> Any:
    return parser.add_subparsers(title=title, dest="command", metavar="COMMAND", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hookbay",
        description="Hookbay: receive webhooks, store them durably, parse them into records, act on them.",
    )
    commands = _commands(parser, "commands")

    up_cmd = commands.add_parser("up", help="run receiver, parser and actions locally until Ctrl-C")
    up_cmd.add_argument(
        "--data-dir", default=".hookbay", help="SQLite database and raw bodies (default ./.hookbay)"
    )
    up_cmd.add_argument("--http-host", default="127.0.0.1", help="address of the public HTTP endpoint")
    up_cmd.add_argument("--http-port", type=_port, default=8080, help="public HTTP port (default 8080)")
    up_cmd.add_argument("--admin-port", type=_port, default=50051, help="admin gRPC port (default 50051)")
    up_cmd.add_argument("--parser-port", type=_port, default=50061, help="parser gRPC port (default 50061)")
    up_cmd.add_argument("--actions-port", type=_port, default=50062, help="actions gRPC port (default 50062)")
    up_cmd.add_argument(
        "--smtp-port",
        type=_port,
        default=8025,
        help="port of the local mail capture, which saves emails in DATA_DIR/outbox (default 8025;"
        " not started when HOOKBAY_SMTP_URL is set)",
    )
    up_cmd.set_defaults(func=cmd_up)

    migrate = commands.add_parser(
        "migrate", help="bring the database schema (HOOKBAY_DATABASE_URL) up to date"
    )
    migrate.set_defaults(func=cmd_migrate)

    sources = commands.add_parser("sources", help="create and manage sources").add_subparsers(
        title="commands", dest="subcommand", metavar="COMMAND", required=True
    )
    create = sources.add_parser("create", help="create a source and print its URL")
    create.add_argument("--name", required=True)
    create.add_argument("--client", default="", help="who the source belongs to")
    create.add_argument("--format", default="auto", help="auto, json, xml, form, ndjson, text or binary")
    create.add_argument(
        "--max-body", type=BYTES, default=0, metavar="BYTES", help="body limit (0: the default)"
    )
    create.add_argument(
        "--verify", metavar="SCHEME", help="check signatures: github, stripe, standard-webhooks, shopify, …"
    )
    create.add_argument(
        "--secret", action="append", default=[], metavar="S", help="signing secret (repeatable)"
    )
    _json_flag(create)
    create.set_defaults(func=cmd_sources_create)
    listing = sources.add_parser("list", help="list sources")
    _json_flag(listing)
    listing.set_defaults(func=cmd_sources_list)
    for name, func, text in [
        ("show", cmd_sources_show, "show one source"),
        ("pause", _source_action("pause_source", "paused"), "stop accepting packets (senders get 404)"),
        ("resume", _source_action("resume_source", "resumed"), "accept packets again"),
        ("rotate", cmd_sources_rotate, "issue a new URL; the old one keeps working for --overlap"),
    ]:
        sub = sources.add_parser(name, help=text)
        sub.add_argument("name", metavar="NAME")
        if name == "rotate":
            sub.add_argument(
                "--overlap",
                type=DURATION,
                default=86400,
                metavar="DURATION",
                help="how long the old URL keeps working: 30s, 15m, 24h, 7d (default 24h)",
            )
            sub.add_argument("--now", action="store_true", help="revoke the old URL at once")
        _json_flag(sub)
        sub.set_defaults(func=func)

    apply_cmd = commands.add_parser("apply", help="create or update sources from a YAML file (idempotent)")
    apply_cmd.add_argument("-f", "--file", required=True, metavar="FILE", help="the YAML file; - for stdin")
    apply_cmd.set_defaults(func=cmd_apply)

    packets = commands.add_parser("packets", help="inspect received packets").add_subparsers(
        title="commands", dest="subcommand", metavar="COMMAND", required=True
    )
    plist = packets.add_parser("list", help="newest packets first")
    plist.add_argument("--source", default="", metavar="NAME")
    plist.add_argument("--status", choices=list(PACKET_STATUSES))
    plist.add_argument(
        "--limit", type=LIMIT, default=100, metavar="N", help="at most N packets (default 100)"
    )
    _json_flag(plist)
    plist.set_defaults(func=cmd_packets_list)
    pshow = packets.add_parser("show", help="one packet, with its headers")
    pshow.add_argument("id", metavar="ID")
    _json_flag(pshow)
    pshow.set_defaults(func=cmd_packets_show)
    praw = packets.add_parser("raw", help="write the packet's exact body bytes to stdout")
    praw.add_argument("id", metavar="ID")
    praw.set_defaults(func=cmd_packets_raw)
    reparse = packets.add_parser(
        "reparse",
        help="parse packets again (after fixing a source's format): by ID, or by --source/--status",
    )
    reparse.add_argument("ids", nargs="*", metavar="ID")
    reparse.add_argument("--source", default="", metavar="NAME", help="packets of this source")
    reparse.add_argument("--status", choices=list(PACKET_STATUSES), help="packets with this status")
    reparse.set_defaults(func=cmd_packets_reparse)

    records = commands.add_parser("records", help="inspect parsed records").add_subparsers(
        title="commands", dest="subcommand", metavar="COMMAND", required=True
    )
    rlist = records.add_parser("list", help="records in the order they were made")
    rlist.add_argument("--source", default="", metavar="NAME")
    rlist.add_argument("--packet", default="", metavar="ID")
    rlist.add_argument(
        "--limit", type=LIMIT, default=100, metavar="N", help="at most N records (default 100)"
    )
    _json_flag(rlist)
    rlist.set_defaults(func=cmd_records_list)

    actions = commands.add_parser("actions", help="inspect and retry action runs").add_subparsers(
        title="commands", dest="subcommand", metavar="COMMAND", required=True
    )
    runs = actions.add_parser("runs", help="action runs, newest first")
    runs.add_argument("--source", default="", metavar="NAME")
    runs.add_argument("--status", choices=list(ACTION_RUN_STATUSES))
    runs.add_argument("--limit", type=LIMIT, default=100, metavar="N", help="at most N runs (default 100)")
    _json_flag(runs)
    runs.set_defaults(func=cmd_actions_runs)
    retry = actions.add_parser("retry", help="make a dead or failed action run due again now")
    retry.add_argument("id", metavar="ID")
    _json_flag(retry)
    retry.set_defaults(func=cmd_actions_retry)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = build_parser().parse_args(argv)
    ctx: Context | None = None
    code = 1
    try:
        ctx = Context()
        code = args.func(args, ctx)
        sys.stdout.flush()  # here, where a closed pipe can still be handled quietly
    except CliError as exc:
        print(f"hookbay: {exc.message}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("hookbay: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        # The reader went away (`| head`): not worth a message, and stdout must not be flushed again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    except Exception as exc:
        print(f"hookbay: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        if ctx is not None:
            ctx.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
