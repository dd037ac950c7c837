"""The packet formats a source can name. The parser implements them; the admin API validates them."""

FORMATS = ("auto", "json", "xml", "form", "ndjson", "text", "binary")
