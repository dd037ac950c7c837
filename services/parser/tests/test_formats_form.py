"""Form bodies: url-encoded (PayPal IPN, Mailchimp) and multipart."""

from __future__ import annotations

import pytest

from hookbay_parser.formats import Limits, ParsedRecord, ParseError, parse

FORM = "application/x-www-form-urlencoded"

# PayPal IPN for a two-item cart: windows-1252 announced only inside the body (%E9 is "é", %ED "í",
# %96 an en dash, which latin-1 would turn into a control character).
PAYPAL_IPN = (
    b"mc_gross=19.95&protection_eligibility=Eligible&address_status=confirmed&payer_id=LPLWNMTBWMFAY&tax=0.00"
    b"&address_street=1+Main+St&payment_date=20%3A12%3A59+Jan+13%2C+2009+PST&payment_status=Completed"
    b"&charset=windows-1252&address_zip=95131&first_name=Jos%E9&mc_fee=0.88&address_country_code=US"
    b"&address_name=Jos%E9+Garc%EDa&notify_version=2.6&custom=&payer_status=verified"
    b"&address_country=United+States&address_city=San+Jose&verify_sign=AtkOfCXbDm2hu0ZELryHFjY-Vb7PAUvS6nMXgysbElEn9v-1XcmSoGtf"
    b"&payer_email=gpmac_1231902590_per%40paypal.com&txn_id=61E67681CH3238416&payment_type=instant"
    b"&last_name=Garc%EDa&address_state=CA&receiver_email=gpmac_1231902686_biz%40paypal.com"
    b"&receiver_id=S8XGHLYDW9T3S&txn_type=cart&item_name1=Widget+%96+blue&item_number1=W-1&quantity1=1"
    b"&mc_gross_1=9.95&item_name2=Gadget&item_number2=G-2&quantity2=1&mc_gross_2=10.00&num_cart_items=2"
    b"&mc_currency=USD&residence_country=US&test_ipn=1&transaction_subject=&payment_gross=19.95&ipn_track_id=a1b2c3d4e5f6"
)


def test_paypal_ipn_uses_the_charset_named_in_the_body() -> None:
    fmt, records = parse(PAYPAL_IPN, FORM)
    assert fmt == "form"
    assert records == [
        ParsedRecord(
            "root",
            0,
            None,
            {
                "mc_gross": "19.95",
                "protection_eligibility": "Eligible",
                "address_status": "confirmed",
                "payer_id": "LPLWNMTBWMFAY",
                "tax": "0.00",
                "address_street": "1 Main St",
                "payment_date": "20:12:59 Jan 13, 2009 PST",
                "payment_status": "Completed",
                "charset": "windows-1252",
                "address_zip": "95131",
                "first_name": "José",
                "mc_fee": "0.88",
                "address_country_code": "US",
                "address_name": "José García",
                "notify_version": "2.6",
                "custom": "",
                "payer_status": "verified",
                "address_country": "United States",
                "address_city": "San Jose",
                "verify_sign": "AtkOfCXbDm2hu0ZELryHFjY-Vb7PAUvS6nMXgysbElEn9v-1XcmSoGtf",
                "payer_email": "gpmac_1231902590_per@paypal.com",
                "txn_id": "61E67681CH3238416",
                "payment_type": "instant",
                "last_name": "García",
                "address_state": "CA",
                "receiver_email": "gpmac_1231902686_biz@paypal.com",
                "receiver_id": "S8XGHLYDW9T3S",
                "txn_type": "cart",
                # Numbered cart keys are plain names: no brackets, no nesting.
                "item_name1": "Widget \u2013 blue",
                "item_number1": "W-1",
                "quantity1": "1",
                "mc_gross_1": "9.95",
                "item_name2": "Gadget",
                "item_number2": "G-2",
                "quantity2": "1",
                "mc_gross_2": "10.00",
                "num_cart_items": "2",
                "mc_currency": "USD",
                "residence_country": "US",
                "test_ipn": "1",
                "transaction_subject": "",
                "payment_gross": "19.95",
                "ipn_track_id": "a1b2c3d4e5f6",
            },
        )
    ]


def test_a_content_type_charset_wins_over_the_body_and_bad_bytes_name_the_field() -> None:
    with pytest.raises(ParseError) as caught:
        parse(PAYPAL_IPN, FORM + "; charset=UTF-8")
    assert str(caught.value) == "form: field 'first_name' is not valid UTF-8 at byte 3"


def test_without_any_charset_the_form_is_utf8() -> None:
    assert parse(b"first_name=Jos%C3%A9&city=S%C3%A3o+Paulo", FORM)[1][0].data == {
        "first_name": "José",
        "city": "São Paulo",
    }
    with pytest.raises(ParseError, match=r"^form: field 'first_name' is not valid utf-8 at byte 3$"):
        parse(b"first_name=Jos%E9", FORM)


@pytest.mark.parametrize("charset", ["klingon-8", "base64"])
def test_an_unknown_charset_is_a_parse_error(charset: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(b"charset=" + charset.encode() + b"&first_name=Jos%E9", FORM)
    assert str(caught.value) == f"form: unknown charset {charset!r}"


MAILCHIMP_SUBSCRIBE = (
    b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data[id]=8a25ff1d98&data[list_id]=a6b5da1054"
    b"&data[email]=api%40mailchimp.com&data[email_type]=html&data[merges][EMAIL]=api%40mailchimp.com"
    b"&data[merges][FNAME]=Mailchimp&data[merges][LNAME]=API&data[merges][INTERESTS]=Group1%2CGroup2"
    b"&data[ip_opt]=10.20.10.30&data[ip_signup]=10.20.10.30"
)
MAILCHIMP_RECORD = ParsedRecord(
    "root",
    0,
    None,
    {
        "type": "subscribe",
        "fired_at": "2009-03-26 21:35:57",
        "data.id": "8a25ff1d98",
        "data.list_id": "a6b5da1054",
        "data.email": "api@mailchimp.com",
        "data.email_type": "html",
        "data.merges.EMAIL": "api@mailchimp.com",
        "data.merges.FNAME": "Mailchimp",
        "data.merges.LNAME": "API",
        "data.merges.INTERESTS": "Group1,Group2",
        "data.ip_opt": "10.20.10.30",
        "data.ip_signup": "10.20.10.30",
    },
)


def test_mailchimp_bracketed_keys_nest() -> None:
    assert parse(MAILCHIMP_SUBSCRIBE, FORM) == ("form", [MAILCHIMP_RECORD])


def test_percent_encoded_brackets_nest_the_same_way() -> None:
    encoded = MAILCHIMP_SUBSCRIBE.replace(b"[", b"%5B").replace(b"]", b"%5D")
    assert parse(encoded, FORM)[1] == [MAILCHIMP_RECORD]


def test_lists_from_repeats_and_empty_brackets() -> None:
    body = b"tags[]=vip&tags[]=eu&single[]=only&interest=1&interest=2&items[0][sku]=A-1&items[1][sku]=B-7&flag&note="
    assert parse(body, FORM)[1] == [
        ParsedRecord(
            "root",
            0,
            None,
            {
                "tags": ["vip", "eu"],
                "single": ["only"],
                "interest": ["1", "2"],
                "items.0.sku": "A-1",
                "items.1.sku": "B-7",
                "flag": "",
                "note": "",
            },
        )
    ]


def test_malformed_brackets_are_taken_literally() -> None:
    assert parse(b"a[b=1&[x]=2&c]=3&d[][e]=4", FORM)[1][0].data == {
        "a[b": "1",
        "[x]": "2",
        "c]": "3",
        "d[][e]": "4",
    }


@pytest.mark.parametrize("body", [b"a=1&a[b]=2", b"a[b]=1&a=2", b"a[]=1&a[b]=2", b"a[b]=1&a[]=2"])
def test_contradicting_brackets_are_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match=r"^form: field 'a(\[b\]|\[\]|)' conflicts with an earlier field"):
        parse(body, FORM)


def test_form_nesting_limit() -> None:
    assert parse(b"a" + b"[x]" * 63 + b"=1", FORM)[1][0].data == {"a" + ".x" * 63: "1"}
    with pytest.raises(ParseError, match=r"^form: nesting deeper than 64 in field 'a\[x\]"):
        parse(b"a" + b"[x]" * 64 + b"=1", FORM)
    with pytest.raises(ParseError, match=r"^form: nesting deeper than 64"):
        parse(b"a" + b"[x]" * 100_000 + b"=1", FORM)
    with pytest.raises(ParseError, match=r"^form: nesting deeper than 2"):
        parse(MAILCHIMP_SUBSCRIBE, FORM, limits=Limits(max_depth=2))


def test_an_empty_form_is_one_empty_record() -> None:
    assert parse(b"", FORM) == ("form", [ParsedRecord("root", 0, None, {})])


BOUNDARY = "----hookbay7MA4YWxkTrZu0gW"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\r\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\x00\xff\r\n%%EOF\n"


def _part(headers: str, content: bytes) -> bytes:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"


# A Mailgun-style inbound route post: text fields, a latin-1 part, a JSON string field and files.
MULTIPART = (
    _part('Content-Disposition: form-data; name="recipient"', b"support@hookbay.example")
    + _part('Content-Disposition: form-data; name="subject"', "Facture n° 42 \u2013 réglée".encode())
    + _part(
        'Content-Disposition: form-data; name="body-plain"\r\nContent-Type: text/plain; charset=ISO-8859-1',
        b"Bonjour,\r\nci-joint la facture r\xe9gl\xe9e.\r\n",
    )
    + _part('Content-Disposition: form-data; name="message-headers"', b'[["X-Mailgun-Sid", "WyI1Nz"]]')
    + _part('Content-Disposition: form-data; name="attachment-count"', b"2")
    + _part(
        'Content-Disposition: form-data; name="attachment-1"; filename="facture-42.pdf"\r\nContent-Type: application/pdf',
        PDF,
    )
    + _part('Content-Disposition: form-data; name="attachment-2"; filename="empty.txt"', b"")
    + f"--{BOUNDARY}--\r\n".encode()
)


def test_multipart_fields_and_file_descriptions() -> None:
    fmt, records = parse(MULTIPART, f'multipart/form-data; boundary="{BOUNDARY}"')
    assert fmt == "form"
    assert records == [
        ParsedRecord(
            "root",
            0,
            None,
            {
                "recipient": "support@hookbay.example",
                "subject": "Facture n° 42 \u2013 réglée",
                "body-plain": "Bonjour,\r\nci-joint la facture réglée.\r\n",
                "message-headers": '[["X-Mailgun-Sid", "WyI1Nz"]]',
                "attachment-count": "2",
                "attachment-1.filename": "facture-42.pdf",
                "attachment-1.content_type": "application/pdf",
                "attachment-1.size": len(PDF),
                "attachment-2.filename": "empty.txt",
                "attachment-2.content_type": "text/plain",
                "attachment-2.size": 0,
            },
        )
    ]


def test_several_files_under_one_name_become_child_records() -> None:
    body = (
        _part('Content-Disposition: form-data; name="title"', b"scans")
        + _part(
            'Content-Disposition: form-data; name="files[]"; filename="a.png"\r\nContent-Type: image/png',
            b"\x89PNG1",
        )
        + _part(
            'Content-Disposition: form-data; name="files[]"; filename="b.png"\r\nContent-Type: image/png',
            b"\x89PNG22",
        )
        + f"--{BOUNDARY}--\r\n".encode()
    )
    assert parse(body, f"multipart/form-data; boundary={BOUNDARY}")[1] == [
        ParsedRecord("root", 0, None, {"title": "scans"}),
        ParsedRecord("files", 1, 0, {"filename": "a.png", "content_type": "image/png", "size": 5}),
        ParsedRecord("files", 2, 0, {"filename": "b.png", "content_type": "image/png", "size": 6}),
    ]


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", MULTIPART, "form: multipart/form-data without a boundary"),
        (
            "multipart/form-data; boundary=other",
            MULTIPART,
            "form: malformed multipart body: the boundary never occurs",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            MULTIPART[:200],
            "form: malformed multipart body: the closing boundary is missing",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            _part("Content-Disposition: form-data", b"x") + f"--{BOUNDARY}--\r\n".encode(),
            "form: multipart part 1 has no field name",
        ),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            _part('Content-Disposition: form-data; name="note"', b"r\xe9gl\xe9e")
            + f"--{BOUNDARY}--\r\n".encode(),
            "form: field 'note' is not valid utf-8 at byte 1",
        ),
    ],
)
def test_malformed_multipart_is_a_parse_error(content_type: str, body: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(body, content_type)
    assert str(caught.value) == reason
