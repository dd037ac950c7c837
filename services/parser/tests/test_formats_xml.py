"""XML bodies: conversion to JSON-like records, and refusal of anything DTD-shaped."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from hookbay_parser.formats import Limits, ParsedRecord, ParseError, parse

SF_NOTIFICATION = """
   <Notification>
    <Id>{notification_id}</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{contact_id}</sf:Id>
     <sf:Email>{email}</sf:Email>
     <sf:FirstName>{first_name}</sf:FirstName>
    </sObject>
   </Notification>"""


def salesforce_outbound_message(*contacts: tuple[str, str, str, str]) -> bytes:
    notifications = "".join(
        SF_NOTIFICATION.format(notification_id=n, contact_id=c, email=e, first_name=f)
        for n, c, e, f in contacts
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
                  xmlns:xsd="http://www.w3.org/2001/XMLSchema"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5g000004H8rjEAC</OrganizationId>
   <ActionId>04k5g000000CaTnAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/59.0/00D5g000004H8rj</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/59.0/00D5g000004H8rj</PartnerUrl>{notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
""".encode()


JANE = ("04l5g00000LLeQjAAL", "0035g00000ABCDeAAF", "jane.roe@example.com", "Jane")
JOSE = ("04l5g00000LLeQkAAL", "0035g00000ABCDfAAF", "jose.garcia@example.com", "José")
SF_ROOT = {
    "notifications.OrganizationId": "00D5g000004H8rjEAC",
    "notifications.ActionId": "04k5g000000CaTnAAK",
    "notifications.SessionId": None,
    "notifications.EnterpriseUrl": "https://acme.my.salesforce.com/services/Soap/c/59.0/00D5g000004H8rj",
    "notifications.PartnerUrl": "https://acme.my.salesforce.com/services/Soap/u/59.0/00D5g000004H8rj",
}


def test_salesforce_outbound_message_with_two_notifications() -> None:
    fmt, records = parse(salesforce_outbound_message(JANE, JOSE), "text/xml; charset=utf-8")
    assert fmt == "xml"
    assert records == [
        ParsedRecord("root", 0, None, SF_ROOT),
        ParsedRecord(
            "notifications.Notification",
            1,
            0,
            {
                "Id": "04l5g00000LLeQjAAL",
                "sObject.@type": "sf:Contact",
                "sObject.Id": "0035g00000ABCDeAAF",
                "sObject.Email": "jane.roe@example.com",
                "sObject.FirstName": "Jane",
            },
        ),
        ParsedRecord(
            "notifications.Notification",
            2,
            0,
            {
                "Id": "04l5g00000LLeQkAAL",
                "sObject.@type": "sf:Contact",
                "sObject.Id": "0035g00000ABCDfAAF",
                "sObject.Email": "jose.garcia@example.com",
                "sObject.FirstName": "José",
            },
        ),
    ]


def test_a_single_salesforce_notification_stays_in_the_root() -> None:
    # No repeated sibling, so no array and no child record: the documented consequence.
    _, records = parse(salesforce_outbound_message(JANE), "text/xml")
    assert records == [
        ParsedRecord(
            "root",
            0,
            None,
            {
                **SF_ROOT,
                "notifications.Notification.Id": "04l5g00000LLeQjAAL",
                "notifications.Notification.sObject.@type": "sf:Contact",
                "notifications.Notification.sObject.Id": "0035g00000ABCDeAAF",
                "notifications.Notification.sObject.Email": "jane.roe@example.com",
                "notifications.Notification.sObject.FirstName": "Jane",
            },
        )
    ]


def test_soap_12_envelope_drops_the_header() -> None:
    body = b"""<?xml version="1.0"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">
  <env:Header><wsse:Security xmlns:wsse="urn:wsse"><wsse:Token>secret</wsse:Token></wsse:Security></env:Header>
  <env:Body>
    <m:StatusChanged xmlns:m="urn:example:shipping"><m:Tracking>1Z999AA10123456784</m:Tracking><m:Status>DELIVERED</m:Status></m:StatusChanged>
  </env:Body>
</env:Envelope>"""
    assert parse(body, "application/soap+xml; charset=utf-8")[1] == [
        ParsedRecord(
            "root",
            0,
            None,
            {"StatusChanged.Tracking": "1Z999AA10123456784", "StatusChanged.Status": "DELIVERED"},
        )
    ]


def test_an_envelope_with_an_empty_body_is_kept_as_is() -> None:
    body = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>'
    assert parse(body, "text/xml")[1] == [ParsedRecord("root", 0, None, {"Envelope.Body": None})]


PAYMENT_NOTIFICATION = b"""<?xml version="1.0" encoding="UTF-8"?>
<ns2:notification xmlns:ns2="urn:example:payments:v2" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  version="2.1" xml:lang="en">
  <ns2:id>ntf_8812</ns2:id>
  <ns2:amount currency="EUR">12.50</ns2:amount>
  <ns2:note>Paid <b>in full</b> by card, <i>no</i> refund</ns2:note>
  <ns2:reference/>
  <ns2:memo>  spaces kept  </ns2:memo>
  <ns2:tags>
    <ns2:tag>vip</ns2:tag>
    <ns2:tag>eu</ns2:tag>
  </ns2:tags>
  <ns2:items>
    <ns2:item sku="A-1"><ns2:qty>2</ns2:qty></ns2:item>
    <ns2:item sku="B-7"><ns2:qty>1</ns2:qty><ns2:gift xsi:nil="1">ignored</ns2:gift></ns2:item>
  </ns2:items>
</ns2:notification>
"""


def test_namespaces_attributes_and_mixed_text() -> None:
    assert parse(PAYMENT_NOTIFICATION, "application/xml")[1] == [
        ParsedRecord(
            "root",
            0,
            None,
            {
                "notification.@version": "2.1",
                "notification.@lang": "en",
                "notification.id": "ntf_8812",
                "notification.amount.@currency": "EUR",
                "notification.amount.#text": "12.50",
                "notification.note.#text": "Paid by card, refund",
                "notification.note.b": "in full",
                "notification.note.i": "no",
                "notification.reference": None,
                "notification.memo": "  spaces kept  ",
                "notification.tags.tag": ["vip", "eu"],
            },
        ),
        ParsedRecord("notification.items.item", 1, 0, {"@sku": "A-1", "qty": "2"}),
        ParsedRecord("notification.items.item", 2, 0, {"@sku": "B-7", "qty": "1", "gift": None}),
    ]


def test_xml_is_sniffed_and_declared_encodings_are_honoured() -> None:
    body = b'<?xml version="1.0" encoding="windows-1252"?>\n<payer><name>Jos\xe9</name><note>\x93hi\x94</note></payer>'
    assert parse(body, "text/plain") == (
        "xml",
        [ParsedRecord("root", 0, None, {"payer.name": "José", "payer.note": "“hi”"})],
    )
    assert parse("<a>é</a>".encode("utf-16"), "application/xml")[1] == [
        ParsedRecord("root", 0, None, {"a": "é"})
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<order>\n  <id>1</id>\n  <total>2.00</id>\n</order>", "xml: mismatched tag at line 3, column 16"),
        (b"", "xml: no element found at line 1, column 1"),
        (b"<a>&nbsp;</a>", "xml: undefined entity at line 1, column 4"),
        (b"<a/><b/>", "xml: junk after document element at line 1, column 5"),
    ],
)
def test_malformed_xml_names_the_position(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(body, "application/xml")
    assert str(caught.value) == reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


def test_billion_laughs_is_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ParseError) as caught:
        parse(BILLION_LAUGHS, "application/xml")
    assert time.monotonic() - started < 1
    assert str(caught.value) == "xml: DTDs are not allowed"


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A real listening socket: any attempt to fetch an external entity would connect to it."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server
    finally:
        server.close()


def _was_contacted(server: socket.socket) -> bool:
    # A completed TCP handshake makes the listening socket readable, even without accept().
    readable, _, _ = select.select([server], [], [], 0.3)
    return bool(readable)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE order [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/secret">]>',
        '<!DOCTYPE order SYSTEM "http://127.0.0.1:{port}/order.dtd">',
        '<!DOCTYPE order [<!ENTITY % remote SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %remote;]>',
        '<!DOCTYPE order PUBLIC "-//Hookbay//Order//EN" "http://127.0.0.1:{port}/order.dtd">',
    ],
)
def test_external_entities_are_refused_without_any_connection(canary: socket.socket, doctype: str) -> None:
    port = canary.getsockname()[1]
    body = f'<?xml version="1.0"?>\n{doctype.format(port=port)}\n<order><id>&xxe;</id></order>'.encode()
    with pytest.raises(ParseError) as caught:
        parse(body, "text/xml")
    assert str(caught.value) == "xml: DTDs are not allowed"
    assert not _was_contacted(canary)
    # The canary itself works: a real connection is noticed.
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        assert _was_contacted(canary)


def test_xml_nesting_limit() -> None:
    ok = b"<a>" * 64 + b"x" + b"</a>" * 64
    assert parse(ok, "application/xml")[1] == [ParsedRecord("root", 0, None, {".".join(["a"] * 64): "x"})]
    with pytest.raises(ParseError) as caught:
        parse(b"<a>" * 65 + b"</a>" * 65, "application/xml")
    assert str(caught.value) == "xml: nesting deeper than 64 at /" + "/".join(["a"] * 65)


def test_absurd_xml_nesting_fails_fast_without_crashing() -> None:
    started = time.monotonic()
    with pytest.raises(ParseError, match=r"^xml: nesting deeper than 64 at /a/a/a"):
        parse(b"<a>" * 100_000 + b"</a>" * 100_000, "application/xml")
    assert time.monotonic() - started < 5


def test_xml_nesting_limit_counts_the_soap_envelope() -> None:
    body = salesforce_outbound_message(JANE)
    with pytest.raises(
        ParseError, match=r"^xml: nesting deeper than 4 at /Envelope/Body/notifications/Notification/sObject$"
    ):
        parse(body, "text/xml", limits=Limits(max_depth=4))
