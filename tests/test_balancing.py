"""Client-side load balancing: one internal channel spreads its calls over every parser replica.

In Kubernetes a headless Service makes ``dns:///hookbay-parser:50061`` resolve to every pod's
address; here a static ``ipv4:`` list of two loopback addresses on one port stands in for that DNS
answer. The channel's round_robin policy is what must spread the calls, whichever resolver fed it.
"""

from __future__ import annotations

import json
import re

from harness import Proc, Stack, free_port, wait_until

PACKETS = 20
PARSED_LINE = re.compile(r'"event":\s*"parser\.packet_\w+"')


def _wait_grpc(host: str, port: int, proc: Proc) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited early:\n{proc.log()[-3000:]}")
            try:
                return stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
            except grpc.RpcError:
                return False

        wait_until(serving, 30, what=f"{proc.name} on {host}:{port}")


def _packets_handled(proc: Proc) -> set[str]:
    handled = set()
    for line in proc.log().splitlines():
        if PARSED_LINE.search(line):
            handled.add(json.loads(line)["packet_id"])
    return handled


def test_receiver_spreads_parser_calls_over_every_replica(stack: Stack) -> None:
    port = free_port()
    hosts = ["127.0.0.1", "127.0.0.2"]  # two "pods" on the same port, as behind a headless Service
    parsers = []
    for n, host in enumerate(hosts):
        proc = stack.start(
            "hookbay_parser", name=f"parser-{n}", HOOKBAY_PARSER_HOST=host, HOOKBAY_PARSER_PORT=str(port)
        )
        _wait_grpc(host, port, proc)
        parsers.append(proc)
    stack.receiver(
        HOOKBAY_PARSER_ADDR=f"ipv4:{hosts[0]}:{port},{hosts[1]}:{port}",
        HOOKBAY_DISPATCH_BATCH="1",  # one packet per ParsePackets call: 20 packets, 20 calls
        HOOKBAY_DISPATCH_IDLE_POLL="0.1",
    )
    source = stack.create_source("spread")
    sent = []
    for i in range(PACKETS):
        response = stack.http.post(stack.url(source), json={"n": i})
        assert response.status_code == 200, response.text
        sent.append(response.json()["id"])

    def all_parsed() -> bool:
        return stack.scalar("SELECT count(*) FROM packets WHERE status = 'parsed'") == PACKETS

    wait_until(all_parsed, timeout=60, what="every packet parsed")
    handled = [_packets_handled(proc) for proc in parsers]
    assert handled[0] | handled[1] == set(sent)
    print(f"\nparser-0 handled {len(handled[0])}, parser-1 {len(handled[1])}")
    for n, packets in enumerate(handled):
        # round_robin alternates over ready subchannels; allow for the first calls going to whichever
        # connected first, but a pinned channel (pick_first) would leave one replica with nothing.
        assert len(packets) >= PACKETS // 4, f"parser-{n} handled {len(packets)} of {PACKETS}: {handled}"
