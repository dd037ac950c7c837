"""How source secrets are shown: as fingerprints, never as themselves.

The admin API answers with these, and ``hookbay apply`` computes the same to tell whether a file's
secrets match what is stored without the server ever sending a secret back.
"""

from __future__ import annotations

import hashlib
from typing import Any


def fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def redact(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as the admin API shows them: secrets replaced by fingerprints, never echoed."""
    verify = settings.get("verify")
    if not isinstance(verify, dict):
        return settings
    shown = {k: v for k, v in verify.items() if k not in ("secrets", "password")}
    secrets = verify.get("secrets") or []
    prints = []
    for item in secrets if isinstance(secrets, list) else []:
        value = item.get("value") if isinstance(item, dict) else item
        entry: dict[str, Any] = {"fingerprint": fingerprint(str(value))}
        if isinstance(item, dict) and item.get("expires_at"):
            entry["expires_at"] = str(item["expires_at"])
        prints.append(entry)
    if prints:
        shown["secrets"] = prints
    if "password" in verify:
        shown["password"] = {"fingerprint": fingerprint(str(verify["password"]))}
    return {**settings, "verify": shown}
