"""Receiver → parser → actions end to end, as real processes, with a real SMTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import struct_pb2  # noqa: F401 - imported for its side effect on descriptors
from harness import SmtpSink, Stack, wait_until

from hookbay.admin.v1 import admin_service_pb2 as admin_pb
from hookbay.types.v1 import types_pb2

ORDER = {
    "id": 727,
    "number": "727",
    "status": "processing",
    "currency": "EUR",
    "date_created": "2026-12-03T10:15:00",
    "total": "29.35",
    "billing": {"first_name": "Jo", "last_name": "Doe", "email": "jo@example.com", "country": "NL"},
    "shipping": {"first_name": "Jo", "city": "Utrecht"},
    "line_items": [
        {
            "id": 315,
            "name": "Woo Single #1",
            "quantity": 2,
            "total": "6.00",
            "taxes": [{"id": 75, "total": "0.45", "subtotal": "0.45"}],
        },
        {"id": 316, "name": "Ship Your Idea", "quantity": 1, "total": "12.00", "taxes": []},
    ],
    "meta_data": [],
}

CONFIRMATION = types_pb2.ActionRule(
    name="order-confirmation",
    type="email",
    on="root",
    when="billing.email",
    to="{{ billing.email }}",
    subject="Thanks for order {{ number }}",
    body="Hello {{ billing.first_name }}, we received order {{ number }} ({{ total }} {{ currency }}).",
)


@pytest.fixture
def pipeline(tmp_path: Path, database_url: str, smtp: SmtpSink) -> Iterator[Stack]:
    stack = Stack(tmp_path, database_url, HOOKBAY_SMTP_URL=smtp.url, HOOKBAY_DISPATCH_IDLE_POLL="0.1")
    try:
        stack.pipeline()
        yield stack
    finally:
        stack.close()


def records_of(stack: Stack, packet_id: str) -> list[types_pb2.Record]:
    return list(stack.admin.ListRecords(admin_pb.ListRecordsRequest(packet_id=packet_id), timeout=10).records)


def wait_status(stack: Stack, packet_id: str, timeout: float = 30) -> admin_pb.Packet:
    def done() -> admin_pb.Packet | None:
        packet = stack.packet(packet_id)
        return packet if packet.status != admin_pb.PACKET_STATUS_RECEIVED else None

    return wait_until(done, timeout, interval=0.1, what=f"packet {packet_id} to be parsed")


def test_woocommerce_order_becomes_records_and_one_email(pipeline: Stack, smtp: SmtpSink) -> None:
    source = pipeline.create_source("shop-orders", format="json", actions=[CONFIRMATION])
    response = pipeline.http.post(
        pipeline.url(source), content=json.dumps(ORDER).encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    packet_id = response.json()["id"]
    packet = wait_status(pipeline, packet_id)
    assert packet.status == admin_pb.PACKET_STATUS_PARSED, packet.error
    assert packet.format == "json"

    records = records_of(pipeline, packet_id)
    by_type = {}
    for record in records:
        by_type.setdefault(record.type, []).append(record)
    root = by_type["root"][0]
    data = json.loads(root.data_json)
    assert data["billing.email"] == "jo@example.com"
    assert data["id"] == 727 and data["total"] == "29.35"
    assert "line_items" not in data
    assert not root.HasField("parent")
    items = by_type["line_items"]
    assert [json.loads(r.data_json)["id"] for r in items] == [315, 316]
    assert all(r.parent == root.ordinal for r in items)
    taxes = by_type["line_items.taxes"]
    assert len(taxes) == 1 and taxes[0].parent == items[0].ordinal
    assert json.loads(taxes[0].data_json)["total"] == "0.45"

    wait_until(lambda: len(smtp.messages) == 1, timeout=30, what="the confirmation email")
    message = smtp.messages[0]
    assert message["To"] == "jo@example.com"
    assert message["Subject"] == "Thanks for order 727"
    assert "Hello Jo, we received order 727 (29.35 EUR)." in message.get_content()
    assert message["Message-ID"].endswith("@hookbay>")

    runs = pipeline.admin.ListActionRuns(
        admin_pb.ListActionRunsRequest(source="shop-orders"), timeout=10
    ).runs
    assert len(runs) == 1 and runs[0].status == types_pb2.ACTION_RUN_STATUS_SUCCEEDED
    assert runs[0].message_id == message["Message-ID"]

    # A re-parse replaces the record set and sends nothing twice.
    pipeline.admin.ReparsePackets(admin_pb.ReparsePacketsRequest(ids=[packet_id]), timeout=10)
    wait_status(pipeline, packet_id)
    wait_until(
        lambda: pipeline.packet(packet_id).actions_state in ("done", ""), timeout=30, what="actions hand-off"
    )
    assert len(records_of(pipeline, packet_id)) == len(records)
    assert pipeline.scalar("SELECT count(*) FROM records") == len(records)
    assert pipeline.scalar("SELECT count(*) FROM action_runs") == 1
    assert len(smtp.messages) == 1


def test_a_parse_error_fails_with_a_reason_and_reparse_fixes_it(pipeline: Stack) -> None:
    source = pipeline.create_source("mislabelled")
    body = b"type=subscribe&data[email]=jo%40example.com"
    packet_id = pipeline.http.post(
        pipeline.url(source), content=body, headers={"Content-Type": "application/json"}
    ).json()["id"]
    packet = wait_status(pipeline, packet_id)
    assert packet.status == admin_pb.PACKET_STATUS_FAILED
    assert packet.error.startswith("json:") and "line 1" in packet.error, packet.error
    assert pipeline.raw(packet_id) == body

    pipeline.admin.UpdateSource(
        admin_pb.UpdateSourceRequest(source=admin_pb.SourceRef(name="mislabelled"), format="form"), timeout=10
    )
    reply = pipeline.admin.ReparsePackets(
        admin_pb.ReparsePacketsRequest(source="mislabelled", status=admin_pb.PACKET_STATUS_FAILED), timeout=10
    )
    assert reply.count == 1
    packet = wait_status(pipeline, packet_id)
    assert packet.status == admin_pb.PACKET_STATUS_PARSED, packet.error
    (record,) = records_of(pipeline, packet_id)
    assert json.loads(record.data_json) == {"type": "subscribe", "data.email": "jo@example.com"}


def test_unparseable_content_is_ignored_with_a_reason(pipeline: Stack) -> None:
    source = pipeline.create_source("misc")
    packet_id = pipeline.http.post(
        pipeline.url(source), content=b"just some words", headers={"Content-Type": "text/plain"}
    ).json()["id"]
    packet = wait_status(pipeline, packet_id)
    assert packet.status == admin_pb.PACKET_STATUS_IGNORED
    assert "text/plain" in packet.error
    assert records_of(pipeline, packet_id) == []


SALESFORCE = b"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000062EAA</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00D000000000062</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/00D000000000062</PartnerUrl>
   <Notification>
    <Id>04l000000000001AAA</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>003000000000001AAA</sf:Id>
     <sf:Email>ana@example.com</sf:Email>
     <sf:FirstName>Ana</sf:FirstName>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l000000000002AAA</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>003000000000002AAA</sf:Id>
     <sf:Email>ben@example.com</sf:Email>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"""

PAYPAL_IPN = (
    b"mc_gross=19.95&protection_eligibility=Eligible&payer_id=LPLWNMTBWMFAY&payment_date=20%3A12%3A59+Jan+13"
    b"%2C+2009+PST&payment_status=Completed&charset=windows-1252&first_name=Jos%E9&last_name=Garc%EDa"
    b"&item_name1=Caf%E9&quantity1=1&mc_currency=EUR&txn_id=61E67681CH3238416&notify_version=3.9"
)
MAILCHIMP = (
    b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25ff1d98&data%5Blist_id%5D=a6b5da1054"
    b"&data%5Bemail%5D=api%40mailchimp.com&data%5Bmerges%5D%5BFNAME%5D=Mailchimp&data%5Bmerges%5D%5BLNAME%5D=API"
    b"&data%5Bmerges%5D%5BINTERESTS%5D=Group1%2CGroup2"
)
SENDGRID = json.dumps(
    [
        {
            "email": "a@example.com",
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd@ismtpd-555>",
            "event": "processed",
            "category": "cat facts",
            "sg_event_id": "sg1",
            "sg_message_id": "m1",
        },
        {
            "email": "b@example.com",
            "timestamp": 1513299570,
            "event": "delivered",
            "category": ["cat facts", "dogs"],
            "sg_event_id": "sg2",
            "response": "250 OK",
        },
    ]
).encode()
NDJSON = b'{"event": "a", "n": 1}\n\n{"event": "b", "n": 2}\n{"event": "c", "n": 3, "nested": {"k": true}}\n'
CLOUDEVENT = json.dumps(
    {
        "specversion": "1.0",
        "type": "com.example.order.created",
        "source": "/shop",
        "id": "A234-1234",
        "time": "2026-12-03T17:31:00Z",
        "datacontenttype": "application/json",
        "data": {"order": 1, "total": 12},
    }
).encode()
XML_DOC = b"""<?xml version="1.0"?>
<inv:invoice xmlns:inv="urn:example:invoice" number="INV-1" currency="EUR">
  <inv:customer id="c-9">Acme <b>BV</b></inv:customer>
  <inv:line sku="A1"><inv:qty>2</inv:qty></inv:line>
  <inv:line sku="B2"><inv:qty>1</inv:qty></inv:line>
</inv:invoice>"""


FORMAT_CASES = {
    "salesforce": ("text/xml; charset=utf-8", SALESFORCE),
    "paypal": ("application/x-www-form-urlencoded", PAYPAL_IPN),
    "mailchimp": ("application/x-www-form-urlencoded", MAILCHIMP),
    "sendgrid": ("application/json", SENDGRID),
    "ndjson": ("application/x-ndjson", NDJSON),
    "cloudevents": ("application/cloudevents+json; charset=utf-8", CLOUDEVENT),
    "xml": ("application/xml", XML_DOC),
}


def test_every_format_end_to_end(pipeline: Stack) -> None:
    source = pipeline.create_source("formats")
    ids = {}
    for name, (ctype, body) in FORMAT_CASES.items():
        response = pipeline.http.post(pipeline.url(source), content=body, headers={"Content-Type": ctype})
        assert response.status_code == 200, (name, response.text)
        if name == "salesforce":  # Salesforce is answered with the SOAP acknowledgement it waits for
            assert b"<Ack>true</Ack>" in response.content
            latest = pipeline.admin.ListPackets(admin_pb.ListPacketsRequest(source="formats", page_size=1))
            ids[name] = latest.packets[0].id
        else:
            ids[name] = response.json()["id"]
    got = {}
    for name, packet_id in ids.items():
        packet = wait_status(pipeline, packet_id)
        assert packet.status == admin_pb.PACKET_STATUS_PARSED, (name, packet.error)
        got[name] = [
            (r.type, r.parent if r.HasField("parent") else None, json.loads(r.data_json))
            for r in records_of(pipeline, packet_id)
        ]

    (root, *notifications) = got["salesforce"]
    assert root[2]["notifications.OrganizationId"] == "00D000000000062EAA"
    assert root[2]["notifications.SessionId"] is None
    assert [n[0] for n in notifications] == ["notifications.Notification"] * 2
    assert notifications[0][2]["sObject.Email"] == "ana@example.com"
    assert notifications[0][2]["sObject.@type"] == "sf:Contact"
    assert notifications[1][2]["Id"] == "04l000000000002AAA"

    (paypal,) = got["paypal"]
    assert paypal[2]["first_name"] == "José" and paypal[2]["last_name"] == "García"
    assert paypal[2]["item_name1"] == "Café"
    assert paypal[2]["payment_date"] == "20:12:59 Jan 13, 2009 PST"

    (mailchimp,) = got["mailchimp"]
    assert mailchimp[2]["data.merges.FNAME"] == "Mailchimp"
    assert mailchimp[2]["data.email"] == "api@mailchimp.com"

    assert [r[0] for r in got["sendgrid"]] == ["root", "root"]
    assert got["sendgrid"][0][2]["smtp-id"] == "<14c5d75ce93.dfd@ismtpd-555>"
    assert got["sendgrid"][1][2]["category"] == ["cat facts", "dogs"]

    assert [r[2]["event"] for r in got["ndjson"]] == ["a", "b", "c"]
    assert got["ndjson"][2][2]["nested.k"] is True

    (event,) = got["cloudevents"]
    assert event[2]["data.total"] == 12 and event[2]["id"] == "A234-1234"

    (invoice, *lines) = got["xml"]
    assert invoice[2]["invoice.@number"] == "INV-1"
    assert invoice[2]["invoice.customer.@id"] == "c-9"
    assert [line[2]["@sku"] for line in lines] == ["A1", "B2"]
    assert all(line[0] == "invoice.line" for line in lines)


def test_github_form_mode_is_parsed_as_the_json_it_carries(pipeline: Stack) -> None:
    from urllib.parse import quote_plus

    source = pipeline.create_source("github-form")
    payload = json.dumps({"ref": "refs/heads/main", "repository": {"pushed_at": 1733234567, "id": 2**70}})
    packet_id = pipeline.http.post(
        pipeline.url(source),
        content=b"payload=" + quote_plus(payload).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push"},
    ).json()["id"]
    packet = wait_status(pipeline, packet_id)
    assert packet.status == admin_pb.PACKET_STATUS_PARSED, packet.error
    assert packet.format == "json"
    (record,) = records_of(pipeline, packet_id)
    data = json.loads(record.data_json)
    assert data["repository.pushed_at"] == 1733234567
    assert data["repository.id"] == 2**70
    assert pipeline.raw(packet_id).startswith(b"payload=")  # the raw bytes stay as sent


def test_hostile_input_fails_cleanly_and_never_calls_out(pipeline: Stack) -> None:
    import socket
    import threading

    canary = socket.socket()
    canary.bind(("127.0.0.1", 0))
    canary.listen()
    canary.settimeout(0.2)
    hits: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, _ = canary.accept()
            except OSError:
                continue
            hits.append(conn)
            conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    port = canary.getsockname()[1]
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 if i > 1 else "") * 10}">'.encode()
            for i in range(1, 10)
        )
        + b"]><lolz>&lol9;</lolz>"
    )
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/secret">]><r>&x;</r>'
    ).encode()
    dtd = f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:{port}/r.dtd"><r/>'.encode()
    deep = b"[" * 10_000 + b"]" * 10_000
    source = pipeline.create_source("hostile")
    try:
        cases = [
            ("application/xml", laughs),
            ("application/xml", xxe),
            ("text/xml", dtd),
            ("application/json", deep),
        ]
        ids = [
            pipeline.http.post(pipeline.url(source), content=body, headers={"Content-Type": ctype}).json()[
                "id"
            ]
            for ctype, body in cases
        ]
        for packet_id in ids:
            packet = wait_status(pipeline, packet_id)
            assert packet.status == admin_pb.PACKET_STATUS_FAILED, packet.error
            assert packet.error
        # Still up and still parsing.
        ok = pipeline.http.post(
            pipeline.url(source), content=b'{"fine": true}', headers={"Content-Type": "application/json"}
        ).json()["id"]
        assert wait_status(pipeline, ok).status == admin_pb.PACKET_STATUS_PARSED
        assert all(proc.alive() for proc in pipeline.procs)
    finally:
        stop.set()
        watcher.join(2)
        canary.close()
    assert hits == [], "the parser made an outbound connection"
