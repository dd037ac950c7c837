"""JSON bodies from real webhook senders, flattened by the documented convention."""

from __future__ import annotations

import time

import pytest

from hookbay_parser.formats import Limits, ParsedRecord, ParseError, parse

WOOCOMMERCE_ORDER = b"""{
  "id": 727,
  "parent_id": 0,
  "number": "727",
  "order_key": "wc_order_58d2d042d1d",
  "created_via": "checkout",
  "version": "8.6.1",
  "status": "processing",
  "currency": "USD",
  "date_created": "2024-03-22T16:28:02",
  "date_created_gmt": "2024-03-22T19:28:02",
  "discount_total": "0.00",
  "shipping_total": "10.00",
  "cart_tax": "1.35",
  "total": "29.35",
  "total_tax": "1.35",
  "prices_include_tax": false,
  "customer_id": 0,
  "customer_note": "",
  "billing": {
    "first_name": "John",
    "last_name": "Doe",
    "company": "",
    "address_1": "969 Market",
    "city": "San Francisco",
    "state": "CA",
    "postcode": "94103",
    "country": "US",
    "email": "john.doe@example.com",
    "phone": "(555) 555-5555"
  },
  "shipping": {
    "first_name": "John",
    "last_name": "Doe",
    "address_1": "969 Market",
    "city": "San Francisco",
    "state": "CA",
    "postcode": "94103",
    "country": "US"
  },
  "payment_method": "bacs",
  "date_paid": null,
  "meta_data": [
    {"id": 13106, "key": "_wc_order_attribution_source_type", "value": "typein"}
  ],
  "line_items": [
    {
      "id": 315,
      "name": "Woo Single #1",
      "product_id": 93,
      "variation_id": 0,
      "quantity": 2,
      "subtotal": "6.00",
      "total": "6.00",
      "total_tax": "0.45",
      "taxes": [{"id": 75, "total": "0.45", "subtotal": "0.45"}],
      "meta_data": [],
      "sku": "",
      "price": 3,
      "image": {"id": "", "src": ""},
      "parent_name": null
    },
    {
      "id": 316,
      "name": "Ship Your Idea &ndash; Color: Black, Size: M Test",
      "product_id": 22,
      "variation_id": 23,
      "quantity": 1,
      "subtotal": "12.00",
      "total": "12.00",
      "total_tax": "0.90",
      "taxes": [{"id": 75, "total": "0.9", "subtotal": "0.9"}],
      "meta_data": [
        {"id": 2095, "key": "pa_color", "value": "black", "display_key": "Color", "display_value": "Black"},
        {"id": 2096, "key": "size", "value": "M Test", "display_key": "Size", "display_value": "M Test"}
      ],
      "sku": "SYI-BLK-M",
      "price": 12.5,
      "image": {"id": "54", "src": "https://shop.example.com/wp-content/uploads/hoodie.jpg"},
      "parent_name": "Ship Your Idea"
    }
  ],
  "tax_lines": [
    {"id": 318, "rate_code": "US-CA-STATE TAX", "rate_id": 75, "label": "State Tax", "compound": false,
     "tax_total": "1.35", "shipping_tax_total": "0.00", "rate_percent": 7.5, "meta_data": []}
  ],
  "shipping_lines": [
    {"id": 317, "method_title": "Flat Rate", "method_id": "flat_rate", "total": "10.00", "taxes": [], "meta_data": []}
  ],
  "fee_lines": [],
  "coupon_lines": [],
  "refunds": [],
  "_links": {
    "self": [{"href": "https://shop.example.com/wp-json/wc/v3/orders/727"}],
    "collection": [{"href": "https://shop.example.com/wp-json/wc/v3/orders"}]
  }
}"""


def test_woocommerce_order_gives_exact_records() -> None:
    fmt, records = parse(WOOCOMMERCE_ORDER, "application/json")
    assert fmt == "json"
    root = {
        "id": 727,
        "parent_id": 0,
        "number": "727",
        "order_key": "wc_order_58d2d042d1d",
        "created_via": "checkout",
        "version": "8.6.1",
        "status": "processing",
        "currency": "USD",
        "date_created": "2024-03-22T16:28:02",
        "date_created_gmt": "2024-03-22T19:28:02",
        "discount_total": "0.00",
        "shipping_total": "10.00",
        "cart_tax": "1.35",
        "total": "29.35",
        "total_tax": "1.35",
        "prices_include_tax": False,
        "customer_id": 0,
        "customer_note": "",
        "billing.first_name": "John",
        "billing.last_name": "Doe",
        "billing.company": "",
        "billing.address_1": "969 Market",
        "billing.city": "San Francisco",
        "billing.state": "CA",
        "billing.postcode": "94103",
        "billing.country": "US",
        "billing.email": "john.doe@example.com",
        "billing.phone": "(555) 555-5555",
        "shipping.first_name": "John",
        "shipping.last_name": "Doe",
        "shipping.address_1": "969 Market",
        "shipping.city": "San Francisco",
        "shipping.state": "CA",
        "shipping.postcode": "94103",
        "shipping.country": "US",
        "payment_method": "bacs",
        "date_paid": None,
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
    }
    assert records == [
        ParsedRecord("root", 0, None, root),
        ParsedRecord(
            "meta_data", 1, 0, {"id": 13106, "key": "_wc_order_attribution_source_type", "value": "typein"}
        ),
        ParsedRecord(
            "line_items",
            2,
            0,
            {
                "id": 315,
                "name": "Woo Single #1",
                "product_id": 93,
                "variation_id": 0,
                "quantity": 2,
                "subtotal": "6.00",
                "total": "6.00",
                "total_tax": "0.45",
                "meta_data": [],
                "sku": "",
                "price": 3,
                "image.id": "",
                "image.src": "",
                "parent_name": None,
            },
        ),
        ParsedRecord("line_items.taxes", 3, 2, {"id": 75, "total": "0.45", "subtotal": "0.45"}),
        ParsedRecord(
            "line_items",
            4,
            0,
            {
                "id": 316,
                "name": "Ship Your Idea &ndash; Color: Black, Size: M Test",
                "product_id": 22,
                "variation_id": 23,
                "quantity": 1,
                "subtotal": "12.00",
                "total": "12.00",
                "total_tax": "0.90",
                "sku": "SYI-BLK-M",
                "price": 12.5,
                "image.id": "54",
                "image.src": "https://shop.example.com/wp-content/uploads/hoodie.jpg",
                "parent_name": "Ship Your Idea",
            },
        ),
        ParsedRecord("line_items.taxes", 5, 4, {"id": 75, "total": "0.9", "subtotal": "0.9"}),
        ParsedRecord(
            "line_items.meta_data",
            6,
            4,
            {
                "id": 2095,
                "key": "pa_color",
                "value": "black",
                "display_key": "Color",
                "display_value": "Black",
            },
        ),
        ParsedRecord(
            "line_items.meta_data",
            7,
            4,
            {"id": 2096, "key": "size", "value": "M Test", "display_key": "Size", "display_value": "M Test"},
        ),
        ParsedRecord(
            "tax_lines",
            8,
            0,
            {
                "id": 318,
                "rate_code": "US-CA-STATE TAX",
                "rate_id": 75,
                "label": "State Tax",
                "compound": False,
                "tax_total": "1.35",
                "shipping_tax_total": "0.00",
                "rate_percent": 7.5,
                "meta_data": [],
            },
        ),
        ParsedRecord(
            "shipping_lines",
            9,
            0,
            {
                "id": 317,
                "method_title": "Flat Rate",
                "method_id": "flat_rate",
                "total": "10.00",
                "taxes": [],
                "meta_data": [],
            },
        ),
        ParsedRecord("_links.self", 10, 0, {"href": "https://shop.example.com/wp-json/wc/v3/orders/727"}),
        ParsedRecord("_links.collection", 11, 0, {"href": "https://shop.example.com/wp-json/wc/v3/orders"}),
    ]
    # Keys keep document order, so a record reads like the payload it came from.
    assert list(records[0].data)[:3] == ["id", "parent_id", "number"]
    # Money stays exactly as sent (strings); JSON numbers keep their Python type.
    assert type(records[2].data["price"]) is int and type(records[4].data["price"]) is float


SHOPIFY_ORDER = b"""{
  "id": 820982911946154508,
  "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
  "email": "jon@example.com",
  "created_at": "2024-06-10T14:02:11-04:00",
  "currency": "USD",
  "total_price": "598.94",
  "subtotal_price": "597.00",
  "total_tax": "11.94",
  "taxes_included": false,
  "tags": "wholesale, vip",
  "note": null,
  "note_attributes": [{"name": "gift_wrap", "value": "yes"}],
  "discount_codes": [],
  "total_price_set": {
    "shop_money": {"amount": "598.94", "currency_code": "USD"},
    "presentment_money": {"amount": "598.94", "currency_code": "USD"}
  },
  "customer": {
    "id": 115310627314723954,
    "email": "john@example.com",
    "accepts_marketing": false,
    "tags": "",
    "default_address": {"address1": "123 Elm St.", "city": "Ottawa", "province_code": "ON", "country_code": "CA", "default": true}
  },
  "line_items": [
    {
      "id": 866550311766439020,
      "variant_id": 808950810,
      "title": "IPod Nano - 8GB",
      "quantity": 1,
      "sku": "IPOD2008PINK",
      "price": "199.00",
      "grams": 567,
      "properties": [],
      "tax_lines": [{"price": "3.98", "rate": 0.02, "title": "State tax", "channel_liable": null}],
      "discount_allocations": [{"amount": "3.34", "discount_application_index": 0}]
    },
    {
      "id": 141249953214522974,
      "variant_id": 49148385,
      "title": "IPod Nano - 8GB",
      "quantity": 1,
      "sku": "IPOD2008RED",
      "price": "199.00",
      "grams": 567,
      "properties": [{"name": "engraving", "value": "For Jo"}],
      "tax_lines": [],
      "discount_allocations": []
    }
  ],
  "shipping_lines": [
    {"id": 271878346596884015, "code": "Standard", "price": "10.00", "tax_lines": []}
  ]
}"""


def test_shopify_order_children_and_grandchildren() -> None:
    _, records = parse(SHOPIFY_ORDER, "application/json")
    assert [(r.type, r.ordinal, r.parent) for r in records] == [
        ("root", 0, None),
        ("note_attributes", 1, 0),
        ("line_items", 2, 0),
        ("line_items.tax_lines", 3, 2),
        ("line_items.discount_allocations", 4, 2),
        ("line_items", 5, 0),
        ("line_items.properties", 6, 5),
        ("shipping_lines", 7, 0),
    ]
    root = records[0].data
    assert root["id"] == 820982911946154508
    assert root["note"] is None
    assert root["discount_codes"] == []
    assert root["total_price_set.presentment_money.currency_code"] == "USD"
    assert root["customer.default_address.default"] is True
    assert "line_items" not in root and "note_attributes" not in root
    assert records[3].data == {"price": "3.98", "rate": 0.02, "title": "State tax", "channel_liable": None}
    assert records[5].data["tax_lines"] == [] and records[5].data["discount_allocations"] == []
    assert records[6].data == {"name": "engraving", "value": "For Jo"}
    assert records[7].data == {
        "id": 271878346596884015,
        "code": "Standard",
        "price": "10.00",
        "tax_lines": [],
    }


STRIPE_INVOICE_PAID = b"""{
  "id": "evt_1PQ3vJ2eZvKYlo2C4n5pRv1x",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1718036421,
  "data": {
    "object": {
      "id": "in_1PQ3vH2eZvKYlo2CmmsvYGW6",
      "object": "invoice",
      "amount_due": 2000,
      "amount_paid": 2000,
      "currency": "usd",
      "customer": "cus_QGa7v1nTqkFzC8",
      "metadata": {},
      "paid": true,
      "discounts": [],
      "last_finalization_error": null,
      "lines": {
        "object": "list",
        "data": [
          {
            "id": "il_1PQ3vH2eZvKYlo2CqPjh2jmD",
            "object": "line_item",
            "amount": 2000,
            "description": "1 \\u00d7 Pro plan (at $20.00 / month)",
            "period": {"end": 1720628419, "start": 1718036419},
            "price": {"id": "price_1PQ3v82eZvKYlo2C", "unit_amount": 2000, "recurring": {"interval": "month", "interval_count": 1}},
            "tax_amounts": [],
            "quantity": 1
          }
        ],
        "has_more": false,
        "total_count": 1,
        "url": "/v1/invoices/in_1PQ3vH2eZvKYlo2CmmsvYGW6/lines"
      },
      "status_transitions": {"finalized_at": 1718036419, "paid_at": 1718036420, "voided_at": null}
    },
    "previous_attributes": {"paid": false}
  },
  "livemode": false,
  "pending_webhooks": 2,
  "request": {"id": "req_9fLIZv4DBJx7Bf", "idempotency_key": "2b3c4d5e-6f70-4182-9abc-def012345678"},
  "type": "invoice.paid"
}"""


def test_stripe_event_flattens_data_object() -> None:
    _, records = parse(STRIPE_INVOICE_PAID, "application/json; charset=utf-8")
    root, line = records
    assert root.data["type"] == "invoice.paid"
    assert root.data["data.object.amount_paid"] == 2000
    assert root.data["data.object.metadata"] == {}
    assert root.data["data.object.discounts"] == []
    assert root.data["data.object.last_finalization_error"] is None
    assert root.data["data.object.lines.total_count"] == 1
    assert root.data["data.object.status_transitions.voided_at"] is None
    assert root.data["data.previous_attributes.paid"] is False
    assert root.data["request.idempotency_key"] == "2b3c4d5e-6f70-4182-9abc-def012345678"
    assert "data.object.lines.data" not in root.data
    assert line == ParsedRecord(
        "data.object.lines.data",
        1,
        0,
        {
            "id": "il_1PQ3vH2eZvKYlo2CqPjh2jmD",
            "object": "line_item",
            "amount": 2000,
            "description": "1 \u00d7 Pro plan (at $20.00 / month)",
            "period.end": 1720628419,
            "period.start": 1718036419,
            "price.id": "price_1PQ3v82eZvKYlo2C",
            "price.unit_amount": 2000,
            "price.recurring.interval": "month",
            "price.recurring.interval_count": 1,
            "tax_amounts": [],
            "quantity": 1,
        },
    )


GITHUB_PUSH = b"""{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "repository": {
    "id": 186853002,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
    "name": "hookbay",
    "full_name": "octo-org/hookbay",
    "private": false,
    "owner": {"name": "octo-org", "login": "octo-org", "id": 6811672, "type": "Organization"},
    "created_at": 1557933565,
    "pushed_at": 1718020432,
    "updated_at": "2024-06-10T11:53:40Z",
    "size": 1456,
    "stargazers_count": 12,
    "topics": ["webhooks", "ingestion"],
    "license": null,
    "default_branch": "main"
  },
  "pusher": {"name": "monalisa", "email": "monalisa@users.noreply.github.com"},
  "sender": {"login": "monalisa", "id": 340282366920938463463374607431768211457, "site_admin": false},
  "created": false,
  "deleted": false,
  "forced": false,
  "compare": "https://github.com/octo-org/hookbay/compare/6113728f27ae...0d1a26e67d8f",
  "commits": [
    {
      "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "distinct": true,
      "message": "Parse SOAP envelopes\\n\\nCloses #42",
      "timestamp": "2024-06-10T13:53:38+02:00",
      "author": {"name": "Mona Lisa", "email": "monalisa@example.com", "username": "monalisa"},
      "added": [],
      "removed": [],
      "modified": ["services/parser/src/hookbay_parser/formats/_xml.py", "README.md"]
    }
  ],
  "head_commit": {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Parse SOAP envelopes\\n\\nCloses #42"}
}"""


def test_github_push_keeps_integer_timestamps_and_huge_integers() -> None:
    _, records = parse(GITHUB_PUSH, "application/json")
    root, commit = records
    assert root.data["repository.pushed_at"] == 1718020432
    assert type(root.data["repository.pushed_at"]) is int
    assert root.data["repository.updated_at"] == "2024-06-10T11:53:40Z"
    assert root.data["repository.topics"] == ["webhooks", "ingestion"]
    assert root.data["repository.license"] is None
    # Beyond 2**64: neither wrapped nor rounded through a float.
    assert root.data["sender.id"] == 2**128 + 1
    assert type(root.data["sender.id"]) is int
    assert root.data["head_commit.message"] == "Parse SOAP envelopes\n\nCloses #42"
    assert commit.type == "commits" and commit.parent == 0
    assert commit.data["author.username"] == "monalisa"
    assert commit.data["added"] == []
    assert commit.data["modified"] == ["services/parser/src/hookbay_parser/formats/_xml.py", "README.md"]


SENDGRID_EVENTS = b"""[
  {"email": "example@test.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
   "event": "processed", "category": "cat facts", "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
   "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
  {"email": "example@test.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
   "event": "deferred", "category": ["cat facts", "newsletter"], "sg_event_id": "t7LEShmowp86DTdUW8M-GQ==",
   "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "response": "400 try again later", "attempt": "5"},
  {"email": "example@test.com", "timestamp": 1513299569, "event": "click", "category": [],
   "useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322; .NET CLR 2.0.50727)",
   "ip": "255.255.255.255", "url": "http://www.sendgrid.com/", "url_offset": {"index": 0, "type": "html"},
   "sg_event_id": "kCAi1KttyQdEKHhdC-nuEA==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"}
]"""


def test_sendgrid_event_array_gives_one_root_per_event() -> None:
    _, records = parse(SENDGRID_EVENTS, "application/json")
    assert [(r.type, r.ordinal, r.parent) for r in records] == [
        ("root", 0, None),
        ("root", 1, None),
        ("root", 2, None),
    ]
    processed, deferred, click = (r.data for r in records)
    assert processed["smtp-id"] == "<14c5d75ce93.dfd.64b469@ismtpd-555>"
    assert processed["category"] == "cat facts"
    assert deferred["category"] == ["cat facts", "newsletter"]
    assert deferred["attempt"] == "5"
    assert click["category"] == []
    assert click["url_offset.index"] == 0 and click["url_offset.type"] == "html"


HUBSPOT_EVENTS = b"""[
  {"eventId": 1937196406, "subscriptionId": 2475631, "portalId": 62515, "appId": 1160452, "occurredAt": 1718034000512,
   "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 123451, "propertyName": "lifecyclestage",
   "propertyValue": "customer", "changeSource": "CRM_UI", "sourceId": "userId:3141592"},
  {"eventId": 1937196407, "subscriptionId": 2475630, "portalId": 62515, "appId": 1160452, "occurredAt": 1718034001337,
   "subscriptionType": "contact.creation", "attemptNumber": 1, "objectId": 123452, "changeFlag": "CREATED",
   "changeSource": "FORM"}
]"""


def test_hubspot_array() -> None:
    _, records = parse(HUBSPOT_EVENTS, "application/json")
    assert [r.ordinal for r in records] == [0, 1]
    assert all(r.type == "root" and r.parent is None for r in records)
    assert records[0].data["propertyValue"] == "customer"
    assert records[1].data == {
        "eventId": 1937196407,
        "subscriptionId": 2475630,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1718034001337,
        "subscriptionType": "contact.creation",
        "attemptNumber": 1,
        "objectId": 123452,
        "changeFlag": "CREATED",
        "changeSource": "FORM",
    }


CLOUDEVENT = b"""{
  "specversion": "1.0",
  "type": "com.github.pull_request.opened",
  "source": "https://github.com/cloudevents/spec/pull",
  "subject": "123",
  "id": "A234-1234-1234",
  "time": "2018-04-05T17:31:00Z",
  "comexampleextension1": "value",
  "datacontenttype": "application/json",
  "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true, "labels": [{"name": "bug"}, {"name": "p1"}]}
}"""


def test_cloudevents_structured_event() -> None:
    fmt, records = parse(CLOUDEVENT, "application/cloudevents+json; charset=UTF-8")
    assert fmt == "json"
    assert records == [
        ParsedRecord(
            "root",
            0,
            None,
            {
                "specversion": "1.0",
                "type": "com.github.pull_request.opened",
                "source": "https://github.com/cloudevents/spec/pull",
                "subject": "123",
                "id": "A234-1234-1234",
                "time": "2018-04-05T17:31:00Z",
                "comexampleextension1": "value",
                "datacontenttype": "application/json",
                "data.appinfoA": "abc",
                "data.appinfoB": 123,
                "data.appinfoC": True,
            },
        ),
        ParsedRecord("data.labels", 1, 0, {"name": "bug"}),
        ParsedRecord("data.labels", 2, 0, {"name": "p1"}),
    ]


def test_cloudevents_batch() -> None:
    batch = b"""[
      {"specversion": "1.0", "type": "io.hookbay.ping", "source": "/probe", "id": "1", "data": {"n": 1}},
      {"specversion": "1.0", "type": "io.hookbay.blob", "source": "/probe", "id": "2",
       "datacontenttype": "application/octet-stream", "data_base64": "aGVsbG8="}
    ]"""
    fmt, records = parse(batch, "application/cloudevents-batch+json")
    assert fmt == "json"
    assert [(r.type, r.ordinal, r.parent) for r in records] == [("root", 0, None), ("root", 1, None)]
    assert records[0].data["data.n"] == 1
    assert records[1].data["data_base64"] == "aGVsbG8="


def test_top_level_scalars_and_scalar_arrays_are_wrapped() -> None:
    assert parse(b"42", "application/json")[1] == [ParsedRecord("root", 0, None, {"value": 42})]
    assert parse(b'"pong"', "application/json")[1] == [ParsedRecord("root", 0, None, {"value": "pong"})]
    assert parse(b"null", "application/json")[1] == [ParsedRecord("root", 0, None, {"value": None})]
    assert parse(b'[1, "a", null, [2], {"b": 3}]', "application/json")[1] == [
        ParsedRecord("root", 0, None, {"value": 1}),
        ParsedRecord("root", 1, None, {"value": "a"}),
        ParsedRecord("root", 2, None, {"value": None}),
        ParsedRecord("root", 3, None, {"value": [2]}),
        ParsedRecord("root", 4, None, {"b": 3}),
    ]
    assert parse(b"[]", "application/json")[1] == []
    assert parse(b"{}", "application/json")[1] == [ParsedRecord("root", 0, None, {})]


def test_mixed_arrays_and_arrays_of_arrays_stay_values() -> None:
    body = b'{"mixed": [1, {"a": 2}], "grid": [[1, 2], [3]], "empties": [{}, {}], "nested": {"deep": {}}}'
    assert parse(body, "application/json")[1] == [
        ParsedRecord("root", 0, None, {"mixed": [1, {"a": 2}], "grid": [[1, 2], [3]], "nested.deep": {}}),
        ParsedRecord("empties", 1, 0, {}),
        ParsedRecord("empties", 2, 0, {}),
    ]


def test_a_dotted_key_colliding_with_a_flattened_one_is_overwritten_by_the_later() -> None:
    assert parse(b'{"a.b": 1, "a": {"b": 2}}', "application/json")[1][0].data == {"a.b": 2}


def test_malformed_json_names_line_and_column() -> None:
    body = b'{\n  "id": 1,\n  "name": "x"\n  "total": "2.00"\n}'
    with pytest.raises(ParseError) as caught:
        parse(body, "application/json")
    assert str(caught.value) == "json: Expecting ',' delimiter at line 4 column 3 (char 29)"


@pytest.mark.parametrize("body", [b"", b"  \r\n", b"\xef\xbb\xbf"])
def test_empty_json_body_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match=r"^json: empty body$"):
        parse(body, "application/json")


def test_invalid_utf8_names_the_byte_offset() -> None:
    with pytest.raises(ParseError, match=r"^json: invalid utf-8 at byte 13$"):
        parse(b'{"name": "Jos\xe9"}', "application/json")
    with pytest.raises(ParseError, match=r"^json: invalid utf-8 at byte 16$"):
        parse(b'\xef\xbb\xbf{"name": "Jos\xe9"}', "application/json")


def test_bom_and_utf16_are_decoded() -> None:
    expected = [ParsedRecord("root", 0, None, {"name": "José"})]
    assert parse('\ufeff{"name": "José"}'.encode(), "application/json")[1] == expected
    assert parse('{"name": "José"}'.encode("utf-16"), "application/json")[1] == expected
    assert parse('{"name": "José"}'.encode("utf-16-be"), "application/json")[1] == expected
    assert parse('{"name": "José"}'.encode("utf-32-le"), "application/json")[1] == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"amount": NaN}', "json: NaN is not valid JSON"),
        (b'{"amount": -Infinity}', "json: -Infinity is not valid JSON"),
        (b'{"amount": 1e400}', "json: number 1e400 is out of range"),
        (b'{"id": ' + b"7" * 5000 + b"}", "json: integer of 5000 digits exceeds the 4300-digit limit"),
    ],
)
def test_numbers_json_cannot_represent_are_parse_errors(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(body, "application/json")
    assert str(caught.value) == reason


def _nested_objects(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def test_nesting_of_64_is_fine_and_65_is_not() -> None:
    _, records = parse(_nested_objects(64), "application/json")
    assert records == [ParsedRecord("root", 0, None, {".".join(["a"] * 64): 1})]
    # The top-level array gives one root whose single element is 63 arrays deep.
    assert parse(b"[" * 64 + b"]" * 64, "application/json")[1] == [
        ParsedRecord("root", 0, None, {"value": _arrays(62)})
    ]
    with pytest.raises(ParseError) as caught:
        parse(_nested_objects(65), "application/json")
    assert str(caught.value) == "json: nesting deeper than 64 at $" + ".a" * 64
    with pytest.raises(ParseError, match=r"^json: nesting deeper than 64 at \$(\[0\]){64}$"):
        parse(b"[" * 65 + b"]" * 65, "application/json")


def _arrays(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_hidden_inside_a_list_value_is_still_counted() -> None:
    with pytest.raises(ParseError, match=r"^json: nesting deeper than 3 at \$\.mixed\[1\]\.a$"):
        parse(b'{"mixed": [1, {"a": {"b": 1}}]}', "application/json", limits=Limits(max_depth=3))


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_absurd_nesting_fails_fast_without_crashing(opener: bytes, depth: int) -> None:
    closer = b"]" if opener == b"[" else b"}"
    started = time.monotonic()
    with pytest.raises(ParseError) as caught:
        parse(opener * depth + closer * depth, "application/json")
    assert time.monotonic() - started < 2
    column = len(opener) * 64 + 1
    assert str(caught.value) == f"json: nesting deeper than 64 at line 1 column {column} (char {column - 1})"


def test_absurd_nesting_sent_as_text_plain_is_reported_as_json_nesting() -> None:
    with pytest.raises(ParseError, match=r"^json: nesting deeper than 64"):
        parse(b"[" * 10_000 + b"]" * 10_000, "text/plain")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = b'{"pattern": "' + b"[{" * 5_000 + b'", "deep": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    with pytest.raises(ParseError) as caught:
        parse(body, "application/json")
    # Level 1 is the object; the 63 brackets after it reach 64, the next one is too deep.
    column = len(b'{"pattern": "' + b"[{" * 5_000 + b'", "deep": ') + 63 + 1
    assert str(caught.value) == f"json: nesting deeper than 64 at line 1 column {column} (char {column - 1})"
