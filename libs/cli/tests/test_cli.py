"""The `hookbay` command against real processes: `hookbay up` on free ports with a temporary data
directory, the CLI run as a subprocess the way people run it, packets posted over real HTTP."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CLI = [sys.executable, "-m", "hookbay_cli.main"]
START_TIMEOUT = 90.0  # generous: the services import a lot, and CI machines are busy
UNREACHABLE = "cannot reach the admin API"
STATUSES = ("received", "parsed", "failed", "ignored")

SOURCE_KEYS = {"id", "name", "guid", "url", "status", "client", "format", "max_body", "settings", "actions"}
RULE_KEYS = {"name", "type", "on", "when", "to", "subject", "body", "sender"}
RUN_KEYS = {
    "id",
    "source",
    "rule",
    "action_type",
    "packet_id",
    "record_ordinal",
    "status",
    "attempts",
    "last_error",
    "message_id",
    "created_at",
    "updated_at",
    "next_attempt_at",
}
PACKET_KEYS = {
    "id",
    "source",
    "status",
    "content_type",
    "size",
    "sha256",
    "received_at",
    "error",
    "attempts",
    "method",
    "client_addr",
    "archived",
    "format",
    "record_count",
    "actions_state",
}


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all held open at once, so the kernel cannot hand out one twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBAY_")}
    env.update(HOOKBAY_LOG_FORMAT="json", **extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, timeout=timeout)


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent``, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            pids.append(int(entry.name))
    return pids


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_running(pid: int) -> bool:
    """Exists and is not a zombie (an orphan's zombie lasts until init gets round to reaping it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(
    check: Callable[[], Any], what: str, timeout: float = 30, last: Callable[[], Any] = str
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that; ``last`` describes the
    state for the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}: {last()}"
        time.sleep(0.2)


def assert_one_error_line(result: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("hookbay: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    return lines[0]


class Up:
    """One `hookbay up` process on free ports, its output in files under ``tmp``."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.outbox = self.data_dir / "outbox"
        ports = free_ports(7)
        self.http_port, self.admin_port, self.parser_port, self.actions_port, self.smtp_port = ports[:5]
        parser_metrics, actions_metrics = ports[5:]
        self.stdout_path = tmp / "up.out"
        self.stderr_path = tmp / "up.err"
        self.env = base_env(
            HOOKBAY_ADMIN_ADDR=f"127.0.0.1:{self.admin_port}",
            HOOKBAY_PARSER_METRICS_PORT=str(parser_metrics),
            HOOKBAY_ACTIONS_METRICS_PORT=str(actions_metrics),
            **env,
        )
        self._stdout = open(self.stdout_path, "wb")  # noqa: SIM115 - closed in stop()
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                *CLI,
                "up",
                "--data-dir",
                str(self.data_dir),
                "--http-port",
                str(self.http_port),
                "--admin-port",
                str(self.admin_port),
                "--parser-port",
                str(self.parser_port),
                "--actions-port",
                str(self.actions_port),
                "--smtp-port",
                str(self.smtp_port),
            ],
            env=self.env,
            stdout=self._stdout,
            stderr=self._stderr,
            cwd=tmp,
        )
        self.http = httpx.Client(timeout=15)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Until `up` prints its banner; fail at once if it exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while "Hookbay is up." not in self.stdout_path.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"`hookbay up` exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"`hookbay up` not ready after {START_TIMEOUT}s:\n{self.output()[-4000:]}"
                )
            time.sleep(0.1)
        assert self.http.get(f"{self.base_url}/readyz").status_code == 200

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return run_cli(*args, env=self.env, stdin=stdin)

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        result = self.cli(*args, stdin=stdin)
        assert result.returncode == 0, (args, result.stderr.decode())
        return result.stdout.decode()

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def terminate(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in child_pids(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)
            raise

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.terminate()
        self.http.close()
        self._stdout.close()
        self._stderr.close()


@contextlib.contextmanager
def running_up(tmp: Path) -> Iterator[Up]:
    up = Up(tmp)
    try:
        up.wait_ready()
        yield up
    finally:
        up.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with running_up(tmp_path_factory.mktemp("up")) as up:
        yield up


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- sources ---------------------------------------------------------------------------------------


def test_up_keeps_its_data_in_the_data_dir(stack: Up) -> None:
    assert (stack.data_dir / "hookbay.db").is_file()
    banner = stack.stdout_path.read_text()
    assert stack.base_url in banner
    assert f"127.0.0.1:{stack.admin_port}" in banner
    assert "hookbay sources create --name" in banner
    assert str(stack.outbox) in banner
    assert stack.outbox.is_dir()


def test_sources_create_list_show_pause_resume_rotate(stack: Up) -> None:
    name = unique("shop")
    created = stack.json("sources", "create", "--name", name, "--client", "acme", "--max-body", "4096")
    assert isinstance(created, dict)
    assert created.keys() >= SOURCE_KEYS
    assert created["name"] == name
    assert created["client"] == "acme"
    assert created["format"] == "auto"
    assert created["max_body"] == 4096
    assert created["status"] == "active"
    assert created["settings"] == {}
    assert created["url"] == f"{stack.base_url}/V1/Data/{created['guid']}"
    uuid.UUID(created["id"])

    listed = stack.json("sources", "list")
    assert isinstance(listed, list)
    assert all(s.keys() >= SOURCE_KEYS for s in listed)
    assert created in [{k: s[k] for k in created} for s in listed]

    shown = stack.json("sources", "show", name)
    assert shown == created
    assert name in stack.ok("sources", "list")  # the table for people
    assert "url:" in stack.ok("sources", "show", name)

    assert stack.ok("sources", "pause", name).strip() == f"paused {name}"
    assert stack.json("sources", "show", name)["status"] == "paused"
    assert stack.http.post(created["url"], content=b"{}").status_code == 404
    assert stack.ok("sources", "resume", name).strip() == f"resumed {name}"
    assert stack.json("sources", "show", name)["status"] == "active"
    assert stack.http.post(created["url"], content=b"{}").status_code == 200

    new_url = stack.ok("sources", "rotate", name).strip()
    assert new_url != created["url"]
    rotated = stack.json("sources", "show", name)
    assert rotated["url"] == new_url
    assert rotated["guid"] != created["guid"]
    assert rotated["id"] == created["id"]
    # By default the old URL keeps working for a day, so senders can be moved over.
    assert stack.http.post(created["url"], content=b"{}").status_code == 200
    assert stack.http.post(new_url, content=b"{}").status_code == 200
    newest = stack.ok("sources", "rotate", name, "--now").strip()
    assert stack.http.post(new_url, content=b"{}").status_code == 404
    assert stack.http.post(created["url"], content=b"{}").status_code == 404
    assert stack.http.post(newest, content=b"{}").status_code == 200


def test_creating_a_duplicate_source_is_one_line(stack: Up) -> None:
    name = unique("dup")
    stack.ok("sources", "create", "--name", name)
    result = stack.cli("sources", "create", "--name", name)
    assert result.returncode == 1
    assert_one_error_line(result, "already exists")


def test_unknown_source_is_one_line(stack: Up) -> None:
    result = stack.cli("sources", "show", "no-such-source")
    assert result.returncode == 1
    assert_one_error_line(result, "no source with name 'no-such-source'")


# -- packets ---------------------------------------------------------------------------------------


def test_raw_bytes_are_byte_identical(stack: Up) -> None:
    name = unique("bytes")
    source = stack.json("sources", "create", "--name", name)
    body = b"\xff\xfe\x00caf\xe9 \x80\x81\r\n" + bytes(range(256)) + "Señor".encode("windows-1252")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    response = stack.http.post(
        source["url"] + "?topic=raw&x=1", content=body, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 200, response.text
    packet_id = response.json()["id"]

    raw = stack.cli("packets", "raw", packet_id)
    assert raw.returncode == 0, raw.stderr.decode()
    assert sha(raw.stdout) == sha(body)
    assert raw.stdout == body

    shown = stack.json("packets", "show", packet_id)
    assert isinstance(shown, dict)
    assert PACKET_KEYS | {"headers", "query_string"} <= shown.keys()
    assert shown["id"] == packet_id
    assert shown["sha256"] == sha(body)
    assert shown["size"] == len(body)
    assert shown["source"] == name
    # "received" while the parser answers UNIMPLEMENTED; a real parser moves it on.
    assert shown["status"] in STATUSES
    assert shown["method"] == "POST"
    assert shown["content_type"] == "application/octet-stream"
    assert shown["query_string"] == "topic=raw&x=1"
    assert ["content-type", "application/octet-stream"] in shown["headers"]
    assert shown["received_at"].endswith("Z")
    assert isinstance(shown["archived"], bool)
    assert isinstance(shown["attempts"], int)

    listed = stack.json("packets", "list", "--source", name)
    assert isinstance(listed, list)
    assert [p["id"] for p in listed] == [packet_id]
    assert listed[0].keys() >= PACKET_KEYS
    assert listed[0]["sha256"] == sha(body)
    for status in STATUSES:
        filtered = stack.json("packets", "list", "--source", name, "--status", status)
        assert all(p["status"] == status for p in filtered)
    assert packet_id in stack.ok("packets", "list", "--source", name)
    assert sha(body) in stack.ok("packets", "show", packet_id)


def test_packets_list_limit_pages(stack: Up) -> None:
    name = unique("many")
    source = stack.json("sources", "create", "--name", name)
    for i in range(3):
        assert stack.http.post(source["url"], content=b'{"n": %d}' % i).status_code == 200
    assert len(stack.json("packets", "list", "--source", name, "--limit", "2")) == 2
    assert len(stack.json("packets", "list", "--source", name)) == 3


def test_unknown_packet_id_is_one_line(stack: Up) -> None:
    missing = str(uuid.uuid4())
    for args in (("packets", "show", missing), ("packets", "raw", missing)):
        result = stack.cli(*args)
        assert result.returncode == 1
        assert result.stdout == b""
        assert_one_error_line(result, f"no packet with id {missing}")
    result = stack.cli("packets", "show", "not-an-id")
    assert result.returncode == 1
    assert_one_error_line(result, "not a packet id")


def test_records_and_action_runs_are_lists(stack: Up) -> None:
    name = unique("rec")
    stack.ok("sources", "create", "--name", name)
    # Nothing is parsed yet (the parser answers UNIMPLEMENTED), so these are empty lists for now.
    assert stack.json("records", "list", "--source", name) == []
    assert stack.json("actions", "runs", "--source", name) == []
    assert isinstance(stack.json("records", "list"), list)
    assert stack.ok("actions", "runs", "--source", name).strip() == "no action runs"


# -- apply -----------------------------------------------------------------------------------------


def test_apply_is_idempotent(stack: Up, tmp_path: Path) -> None:
    first, second = unique("apply"), unique("apply")
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""
sources:
  - name: {first}
    client: acme
    format: json
    max_body: 2048
    settings:
      rate_limit:
        rate: 500
        burst: 1000
      content_types: [application/json, text/plain]
  - name: {second}
    status: paused
"""
    )
    out = stack.ok("apply", "-f", str(path)).splitlines()
    assert len(out) == 2
    assert out[0].split()[:2] == ["created", first]
    assert out[1].split()[:2] == ["created", second]

    shown = stack.json("sources", "show", first)
    assert (shown["client"], shown["format"], shown["max_body"]) == ("acme", "json", 2048)
    # Keys the receiver knows (it refuses others): numbers and lists must round-trip unchanged.
    assert shown["settings"] == {
        "rate_limit": {"rate": 500, "burst": 1000},
        "content_types": ["application/json", "text/plain"],
    }
    assert stack.json("sources", "show", second)["status"] == "paused"

    again = stack.ok("apply", "-f", str(path)).splitlines()
    assert [line.split()[:2] for line in again] == [["unchanged", first], ["unchanged", second]]

    path.write_text(
        f"sources:\n  - name: {first}\n    max_body: 4096\n  - name: {second}\n    status: active\n"
    )
    changed = stack.ok("apply", "-f", str(path)).splitlines()
    assert [line.split()[:2] for line in changed] == [["updated", first], ["updated", second]]
    assert "max_body" in changed[0]
    shown = stack.json("sources", "show", first)
    assert shown["max_body"] == 4096
    assert shown["client"] == "acme"  # keys left out keep their values
    assert stack.json("sources", "show", second)["status"] == "active"

    from_stdin = stack.ok("apply", "-f", "-", stdin=path.read_bytes()).splitlines()
    assert [line.split()[:2] for line in from_stdin] == [["unchanged", first], ["unchanged", second]]


def test_apply_names_a_misspelt_key(stack: Up, tmp_path: Path) -> None:
    name = unique("typo")
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  - name: {name}-ok\n  - name: {name}\n    formt: json\n")
    result = stack.cli("apply", "-f", str(path))
    assert result.returncode != 0
    line = assert_one_error_line(result, "sources[1].formt", "unknown key", "sources.yaml")
    assert "'format'" in line  # did you mean
    # Validation happens before anything is sent: the first, valid source was not created either.
    assert stack.cli("sources", "show", f"{name}-ok").returncode == 1


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("sources:\n  - name: a\n    max_body: 1MB\n", ["sources[0].max_body", "must be a whole number"]),
        ("sources:\n  - client: x\n", ["sources[0].name", "required"]),
        ("sources:\n  - name: a\n    status: stopped\n", ["sources[0].status", "'active' or 'paused'"]),
        ("sources:\n  - name: a\n   bad: [\n", ["invalid YAML", "line 3"]),
        ("- name: a\n", ["top level"]),
        ("", ["empty"]),
        ("sources:\n  - name: a\n  - name: a\n", ["sources[1].name", "already used"]),
        ("sources:\n  - name: a\n    settings: {n: 9007199254740993}\n", ["sources[0].settings.n", "2**53"]),
        ("sources:\n  - name: a\n    name: b\n", ["duplicate key 'name'"]),
        (
            "sources:\n  - name: a\n    actions:\n      - {name: r, type: log}\n      - {name: m, type: email}\n",
            ["sources[0].actions[1].to: an email action needs to and subject"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - {name: m, type: email, to: x@example.com}\n",
            ["sources[0].actions[0].subject: an email action needs subject"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - name: r\n        type: log\n        whenn: x\n",
            ["sources[0].actions[0].whenn: unknown key", "'when'"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - {name: r, type: sms}\n",
            ["sources[0].actions[0].type"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - {type: log}\n",
            ["sources[0].actions[0].name", "required"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - {name: r, type: log, when: 'a ==='}\n",
            ["sources[0].actions[0].when", "JMESPath"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - {name: r, type: email, to: '{{ x', subject: s}\n",
            ["sources[0].actions[0].to", "template"],
        ),
        (
            "sources:\n  - name: a\n    actions:\n      - {name: r, type: log}\n      - {name: r, type: log}\n",
            ["sources[0].actions[1].name", "already used by sources[0].actions[0]"],
        ),
        ("sources:\n  - name: a\n    actions: {name: r}\n", ["sources[0].actions", "must be a list"]),
    ],
)
def test_apply_file_mistakes_are_one_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    # No server needed: the file is checked before the first call.
    result = run_cli("apply", "-f", str(path), env=base_env(HOOKBAY_ADMIN_ADDR=f"127.0.0.1:{free_port()}"))
    assert result.returncode == 1
    assert_one_error_line(result, *fragments)


def test_apply_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("apply", "-f", str(tmp_path / "nope.yaml"), env=base_env())
    assert result.returncode == 1
    assert_one_error_line(result, "nope.yaml", "no such file")


def test_apply_manages_action_rules(stack: Up, tmp_path: Path) -> None:
    name, paused = unique("rules"), unique("paused")
    path = tmp_path / "sources.yaml"
    rules = f"""
sources:
  - name: {name}
    format: json
    actions:
      - name: order-confirmation
        type: email
        when: billing.email
        to: "{{{{ billing.email }}}}"
        subject: "Thanks for order {{{{ number }}}}"
      - name: audit-lines
        type: log
        on: line_items
  - name: {paused}
    status: paused
"""
    path.write_text(rules)
    out = stack.ok("apply", "-f", str(path)).splitlines()
    assert [line.split()[:2] for line in out] == [["created", name], ["created", paused]]
    assert out[1].endswith("(paused)")
    assert stack.json("sources", "show", paused)["status"] == "paused"
    assert stack.json("sources", "show", paused)["actions"] == []

    actions = stack.json("sources", "show", name)["actions"]
    assert actions == [
        {
            "name": "order-confirmation",
            "type": "email",
            "on": "root",  # the default, spelt out
            "when": "billing.email",
            "to": "{{ billing.email }}",
            "subject": "Thanks for order {{ number }}",
            "body": "",
            "sender": "",
        },
        {
            "name": "audit-lines",
            "type": "log",
            "on": "line_items",  # `on` is a YAML 1.1 boolean; as a key it is the word
            "when": "",
            "to": "",
            "subject": "",
            "body": "",
            "sender": "",
        },
    ]
    assert all(rule.keys() == RULE_KEYS for rule in actions)
    assert [s["actions"] for s in stack.json("sources", "list") if s["name"] == name] == [actions]
    assert "order-confirmation (email on root)" in stack.ok("sources", "show", name)

    again = stack.ok("apply", "-f", str(path)).splitlines()
    assert [line.split()[:2] for line in again] == [["unchanged", name], ["unchanged", paused]]

    # Spelling out a default is no change either.
    path.write_text(rules.replace("type: email\n", "type: email\n        on: root\n        sender: ''\n"))
    assert stack.ok("apply", "-f", str(path)).split()[:2] == ["unchanged", name]

    # Without an `actions:` key the rules stay as they are.
    path.write_text(f"sources:\n  - name: {name}\n    client: acme\n")
    assert stack.ok("apply", "-f", str(path)).strip() == f"updated   {name}  (client)"
    assert stack.json("sources", "show", name)["actions"] == actions

    path.write_text(rules.replace("on: line_items", "on: line_items.taxes"))
    assert stack.ok("apply", "-f", str(path)).splitlines()[0] == f"updated   {name}  (actions)"
    assert stack.json("sources", "show", name)["actions"][1]["on"] == "line_items.taxes"

    # An empty list removes them.
    path.write_text(f"sources:\n  - name: {name}\n    actions: []\n")
    assert stack.ok("apply", "-f", str(path)).strip() == f"updated   {name}  (actions)"
    assert stack.json("sources", "show", name)["actions"] == []
    assert stack.ok("apply", "-f", str(path)).strip() == f"unchanged {name}"


def test_apply_names_the_bad_rule_and_sends_nothing(stack: Up, tmp_path: Path) -> None:
    name = unique("badrule")
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"sources:\n  - name: {name}\n    actions:\n      - name: ok\n        type: log\n"
        "      - name: mail\n        type: email\n        subject: hi\n"
    )
    result = stack.cli("apply", "-f", str(path))
    assert result.returncode == 1
    assert_one_error_line(result, "sources.yaml: sources[0].actions[1].to: an email action needs to")
    assert stack.cli("sources", "show", name).returncode == 1


# -- actions, end to end ---------------------------------------------------------------------------


def emails_to(outbox: Path, address: str) -> list[email.message.EmailMessage]:
    """The captured messages addressed to ``address`` (only finished files: no temporaries)."""
    found = []
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            found.append(message)
    return found


def test_an_email_action_end_to_end(stack: Up, tmp_path: Path) -> None:
    name = unique("orders")
    address = f"{unique('jo')}@example.com"
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""
sources:
  - name: {name}
    format: json
    actions:
      - name: order-confirmation
        type: email
        when: billing.email
        to: "{{{{ billing.email }}}}"
        subject: "Thanks for order {{{{ number }}}}"
        body: "Hello {{{{ billing.first_name }}}}, we have your order."
"""
    )
    stack.ok("apply", "-f", str(path))
    url = stack.json("sources", "show", name)["url"]

    order = {
        "id": 727,
        "number": "727",
        "status": "processing",
        "currency": "EUR",
        "total": "29.00",
        "billing": {"first_name": "Jo", "last_name": "Bloggs", "email": address},
        "line_items": [
            {"id": 1, "name": "Mug", "quantity": 2, "total": "18.00"},
            {"id": 2, "name": "Tea", "quantity": 1, "total": "11.00"},
        ],
    }
    response = stack.http.post(
        url, content=json.dumps(order).encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    packet_id = response.json()["id"]

    seen: dict[str, Any] = {}

    def packet(which: str = "") -> dict[str, Any]:
        seen["packet"] = stack.json("packets", "show", which or packet_id)
        return seen["packet"]

    def state() -> str:
        return f"{seen.get('packet')}\n{stack.output()[-3000:]}"

    shown = wait_until(
        lambda: (p := packet())["status"] == "parsed" and p["actions_state"] == "done" and p,
        "the packet to be parsed and its actions taken",
        last=state,
    )
    assert (shown["format"], shown["record_count"], shown["error"]) == ("json", 3, "")
    listed = stack.json("packets", "list", "--source", name)
    assert listed[0].keys() >= PACKET_KEYS
    assert (listed[0]["format"], listed[0]["record_count"]) == ("json", 3)

    records = stack.json("records", "list", "--packet", packet_id)
    assert [(r["type"], r["ordinal"], r["parent"]) for r in records] == [
        ("root", 0, None),
        ("line_items", 1, 0),
        ("line_items", 2, 0),
    ]
    assert records[0]["data"]["billing.email"] == address
    assert [r["data"]["name"] for r in records[1:]] == ["Mug", "Tea"]

    [mail] = wait_until(lambda: emails_to(stack.outbox, address), "the email in the outbox", last=state)
    assert mail["Subject"] == "Thanks for order 727"
    assert "Hello Jo, we have your order." in mail.get_content()
    assert not list(stack.outbox.glob(".*"))  # no temporary files left behind

    runs = wait_until(
        lambda: [r for r in stack.json("actions", "runs", "--source", name) if r["status"] == "succeeded"],
        "the action run to succeed",
        last=state,
    )
    assert len(runs) == 1
    [run] = runs
    assert run.keys() == RUN_KEYS
    assert (run["rule"], run["action_type"], run["packet_id"], run["record_ordinal"]) == (
        "order-confirmation",
        "email",
        packet_id,
        0,
    )
    assert run["message_id"] == mail["Message-ID"]
    assert stack.json("actions", "runs", "--source", name, "--status", "succeeded") == [run]
    assert stack.json("actions", "runs", "--source", name, "--status", "dead") == []

    # Parsing again replaces the records but never sends a second email.
    before = shown["parsed_at"]
    assert stack.ok("packets", "reparse", packet_id).strip() == "queued 1 packet(s) for parsing"
    wait_until(
        lambda: (
            (p := packet())["status"] == "parsed"
            and p["parsed_at"] != before
            and p["actions_state"] == "done"
        ),
        "the packet to be parsed again",
        last=state,
    )
    assert len(stack.json("records", "list", "--packet", packet_id)) == 3
    time.sleep(1)  # give a wrong second email time to arrive
    assert len(emails_to(stack.outbox, address)) == 1
    assert [r["id"] for r in stack.json("actions", "runs", "--source", name)] == [run["id"]]

    # A packet the format cannot read fails with the reason; after fixing the format it parses.
    response = stack.http.post(
        url, content=b'{"id": 728, "number": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    bad_id = response.json()["id"]
    failed = wait_until(
        lambda: (p := packet(bad_id))["status"] == "failed" and p, "the packet to fail", last=state
    )
    assert failed["error"].startswith("json:"), failed["error"]
    assert failed["record_count"] == 0
    path.write_text(f"sources:\n  - name: {name}\n    format: form\n")
    assert stack.ok("apply", "-f", str(path)).strip() == f"updated   {name}  (format)"
    assert len(stack.json("sources", "show", name)["actions"]) == 1  # untouched
    out = stack.ok("packets", "reparse", "--source", name, "--status", "failed")
    assert out.strip() == "queued 1 packet(s) for parsing"
    reparsed = wait_until(
        lambda: (p := stack.json("packets", "show", bad_id))["status"] == "parsed" and p,
        "the packet to parse",
    )
    assert (reparsed["format"], reparsed["error"], reparsed["record_count"]) == ("form", "", 1)
    assert stack.json("packets", "show", packet_id)["status"] == "parsed"  # only the failed one was queued

    # Only dead or failed runs can be retried.
    result = stack.cli("actions", "retry", run["id"])
    assert result.returncode == 1
    assert_one_error_line(result, run["id"], "succeeded", "only dead or failed")
    missing = str(uuid.uuid4())
    result = stack.cli("actions", "retry", missing)
    assert result.returncode == 1
    assert_one_error_line(result, f"no action run with id {missing}")
    assert len(emails_to(stack.outbox, address)) == 1
    assert len(stack.json("actions", "runs", "--source", name)) == 1


def test_reparse_of_an_unknown_source_is_one_line(stack: Up) -> None:
    result = stack.cli("packets", "reparse", "--source", "no-such-source")
    assert result.returncode == 1
    assert_one_error_line(result, "no source with name 'no-such-source'")


# -- failures without a server ---------------------------------------------------------------------


def test_unreachable_admin_api_is_one_line() -> None:
    addr = f"127.0.0.1:{free_port()}"
    for args in (["sources", "list"], ["packets", "list", "--json"], ["packets", "raw", str(uuid.uuid4())]):
        result = run_cli(*args, env=base_env(HOOKBAY_ADMIN_ADDR=addr))
        assert result.returncode == 1
        line = assert_one_error_line(result, UNREACHABLE, addr, "hookbay up")
        assert line == f"hookbay: {UNREACHABLE} at {addr} — is `hookbay up` running?"


def test_usage_errors_exit_2_with_one_line() -> None:
    for args in (
        ["sources", "create"],
        ["packets", "list", "--status", "weird"],
        ["nonsense"],
        ["actions", "runs", "--status", "weird"],
        ["actions", "retry"],
    ):
        result = run_cli(*args, env=base_env())
        assert result.returncode == 2
        assert_one_error_line(result)


def test_reparse_without_ids_or_filters_is_a_usage_error() -> None:
    # No server at this address: the mistake is reported before any call.
    result = run_cli("packets", "reparse", env=base_env(HOOKBAY_ADMIN_ADDR=f"127.0.0.1:{free_port()}"))
    assert result.returncode == 2
    assert result.stdout == b""
    assert_one_error_line(result, "packets reparse", "--source", "--status")


def test_up_with_its_http_port_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        admin, parser, actions = free_ports(3)
        result = run_cli(
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(port),
            "--admin-port",
            str(admin),
            "--parser-port",
            str(parser),
            "--actions-port",
            str(actions),
            env=base_env(),
        )
    assert result.returncode != 0
    assert_one_error_line(result, f"port {port} is already in use (HTTP)", "--http-port")


def test_up_with_its_smtp_port_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http, admin, parser, actions = free_ports(4)
        args = [
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(http),
            "--admin-port",
            str(admin),
        ]
        args += ["--parser-port", str(parser), "--actions-port", str(actions), "--smtp-port", str(port)]
        result = run_cli(*args, env=base_env())
    assert result.returncode != 0
    assert_one_error_line(result, f"port {port} is already in use (mail capture SMTP)", "--smtp-port")


# -- stopping --------------------------------------------------------------------------------------


def service_children(parent: int) -> dict[str, int]:
    """``{"hookbay_parser": pid, ...}`` for the services `up` runs as ``python -m <module>``."""
    found = {}
    for pid in child_pids(parent):
        with contextlib.suppress(OSError, IndexError):
            found[Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2].decode()] = pid
    return found


def test_a_dead_child_is_restarted_and_sigterm_stops_everything(tmp_path: Path) -> None:
    up = Up(tmp_path)
    try:
        up.wait_ready()
        first = service_children(up.proc.pid)
        assert sorted(first) == ["hookbay_actions", "hookbay_parser", "hookbay_receiver"]

        os.kill(first["hookbay_parser"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while service_children(up.proc.pid).get("hookbay_parser") in (None, first["hookbay_parser"]):
            assert up.proc.poll() is None, up.output()[-4000:]
            assert time.monotonic() < deadline, "the parser was not restarted"
            time.sleep(0.1)
        assert (
            "the parser exited unexpectedly (killed by SIGKILL); restarting in 1s"
            in up.stderr_path.read_text()
        )
        now = service_children(up.proc.pid)
        assert now["hookbay_receiver"] == first["hookbay_receiver"]
        assert now["hookbay_actions"] == first["hookbay_actions"]

        assert up.terminate() == 0, up.output()[-4000:]
        assert [pid for pid in now.values() if pid_exists(pid)] == []
        assert "Traceback" not in up.stderr_path.read_text()
    finally:
        up.stop()


def test_children_die_with_a_sigkilled_up(tmp_path: Path) -> None:
    # With HOOKBAY_SMTP_URL set there is no local mail capture; `up` leaves the port alone.
    smtp_url = f"smtp://127.0.0.1:{free_port()}"
    up = Up(tmp_path, HOOKBAY_SMTP_URL=smtp_url)
    children: dict[str, int] = {}
    try:
        up.wait_ready()
        banner = up.stdout_path.read_text()
        assert smtp_url in banner
        assert "outbox" not in banner
        assert not up.outbox.exists()
        children = service_children(up.proc.pid)
        assert sorted(children) == ["hookbay_actions", "hookbay_parser", "hookbay_receiver"]
        environ = Path(f"/proc/{children['hookbay_actions']}/environ").read_bytes().split(b"\0")
        assert f"HOOKBAY_SMTP_URL={smtp_url}".encode() in environ

        up.proc.kill()  # SIGKILL: `up` gets no chance to stop anything itself
        up.proc.wait(10)
        wait_until(
            lambda: not [pid for pid in children.values() if pid_running(pid)],
            "the services to exit after `up` was killed",
            timeout=10,
        )
    finally:
        for pid in children.values():  # only when the test failed: they should be gone
            if pid_running(pid):
                os.kill(pid, signal.SIGKILL)
        up.stop()


def test_door_settings_apply_idempotently_and_never_echo_secrets(stack: Up, tmp_path: Path) -> None:
    """verify: and friends sit at the source's top level; secrets come back only as fingerprints,
    and a second apply of the same file changes nothing."""
    sources = tmp_path / "door.yaml"
    sources.write_text(
        "sources:\n"
        "  - name: gh-door\n"
        "    verify: {scheme: github, secrets: [door-secret-123]}\n"
        "    dedup: {header: X-Request-Id}\n"
        "    rate_limit: {rate: 10, burst: 20}\n"
    )
    assert "created" in stack.ok("apply", "-f", str(sources))
    assert "unchanged" in stack.ok("apply", "-f", str(sources))
    shown = stack.ok("sources", "show", "gh-door", "--json")
    assert "door-secret-123" not in shown
    settings = json.loads(shown)["settings"]
    assert settings["verify"]["secrets"][0]["fingerprint"].startswith("sha256:")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: gh-door\n    verify: {scheme: gitlab, secrets: [x]}\n")
    result = stack.cli("apply", "-f", str(bad))
    assert result.returncode == 1 and b"verify.scheme" in result.stderr and b"Traceback" not in result.stderr


def test_rotate_with_overlap_and_now(stack: Up) -> None:
    created = stack.json("sources", "create", "--name", "rot")
    rotated = stack.json("sources", "rotate", "rot", "--overlap", "1h")
    assert rotated["guid"] != created["guid"]
    assert rotated["previous_guid"] == created["guid"]
    assert rotated["previous_guid_expires_at"]
    revoked = stack.json("sources", "rotate", "rot", "--now")
    assert revoked["previous_guid"] is None
    bad = stack.cli("sources", "rotate", "rot", "--overlap", "soon")
    assert bad.returncode == 2 and b"not a duration" in bad.stderr
