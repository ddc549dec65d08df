"""``cie keys create|list|revoke``: manage the API's keys in the live PostgreSQL schema."""

import argparse
import json
import math
import os
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cie.apikeys import (
    KEY_ID_PATTERN,
    SCOPES,
    ApiKeyAlreadyRevoked,
    ApiKeyNotFound,
    create_api_key,
    create_table,
    list_api_keys,
    revoke_api_key,
)
from cie.settings import get_settings


def _expiry_days(text: str) -> float:
    """Parse --expires-in: a finite number of days greater than 0 whose expiry fits in a datetime."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not math.isfinite(days) or days <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a number of days greater than 0, not {text}; omit --expires-in for a key that never expires")
    try:
        datetime.now(timezone.utc) + timedelta(days=days)
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"{text} days ends after the year 9999; omit --expires-in for a key that never expires") from None
    return days


def _key_id(text: str) -> str:
    """Parse a key id: 12 lowercase hexadecimal characters, never a whole token."""
    if text.startswith("cie_"):
        # Not echoed: the argument is a bearer token, and its secret does not belong in a terminal or a log.
        raise argparse.ArgumentTypeError("that is a token, not a key id; the key id is the 12 characters after cie_")
    if not KEY_ID_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a key id; a key id is 12 hexadecimal characters, as `cie keys list` prints")
    return text


def _example_request(scopes: list[str], token: str, base_url: str) -> str:
    """Return a curl command that the scopes allow, so that a new key can be tried at once."""
    authorization = shlex.quote(f"Authorization: Bearer {token}")
    if "profiles:read" in scopes or "admin" in scopes:
        return f"curl -H {authorization} {base_url}/v1/customers/12347"
    if "analytics:read" in scopes:
        return f"curl -H {authorization} {base_url}/v1/analytics/summary"
    event = {"event_type": "customer.registered", "customer_id": "example-1",
             "occurred_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return (f"curl -H {authorization} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(json.dumps(event))} {base_url}/v1/events")


def _create(args) -> int:
    settings = get_settings()
    if args.token_file and Path(args.token_file).exists():
        print(f"error: the token file {args.token_file} already exists; delete it or choose another path",
              file=sys.stderr)
        return 2
    create_table(settings)
    expires_at = None
    if args.expires_in is not None:
        expires_at = datetime.now(timezone.utc) + timedelta(days=args.expires_in)
    try:
        key = create_api_key(settings, args.name, args.scope, expires_at, args.rate_per_second, args.burst)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.token_file:
        _write_private(Path(args.token_file), key.secret + "\n")
        print(f"created API key {key.key_id} ({key.name}), scopes {', '.join(key.scopes)}; "
              f"token written to {args.token_file}")
        return 0
    print(f"created API key {key.key_id} ({key.name}), scopes {', '.join(key.scopes)}, "
          f"expires {key.expires_at.isoformat() if key.expires_at else 'never'}")
    print("Token (shown only now; only its hash is stored):")
    print(f"  {key.secret}")
    example = _example_request(key.scopes, key.secret, f"http://{settings.api_host}:{settings.api_port}")
    print("Send it with every request, for example:")
    print(f"  {example}")
    if example.endswith("/v1/events"):
        print("  (this produces a real customer.registered event for the customer example-1)")
    return 0


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file that only the owner can read (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def _when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if value else "-"


def _limit(value: float | int | None) -> str:
    return "default" if value is None else f"{value:g}"


def _list(args) -> int:
    settings = get_settings()
    create_table(settings)
    keys = list_api_keys(settings)
    if not keys:
        print("no API keys; create one with `cie keys create --name NAME --scope SCOPE`")
        return 0
    # "default" rate and burst: CIE_RATE_LIMIT_PER_SECOND and CIE_RATE_LIMIT_BURST of the API at request time.
    header = ("id", "name", "scopes", "rate/s", "burst", "created", "last used", "expires", "revoked")
    rows = [(key.key_id, key.name, ",".join(key.scopes), _limit(key.rate_per_second), _limit(key.burst),
             _when(key.created_at), _when(key.last_used_at), _when(key.expires_at), _when(key.revoked_at))
            for key in keys]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    return 0


def _revoke(args) -> int:
    settings = get_settings()
    create_table(settings)
    try:
        key = revoke_api_key(settings, args.key_id)
    except ApiKeyNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ApiKeyAlreadyRevoked as error:
        key = error.key
        print(f"error: API key {key.key_id} ({key.name}) was already revoked at {_when(key.revoked_at)} UTC; "
              "nothing changed", file=sys.stderr)
        return 1
    print(f"revoked API key {key.key_id} ({key.name}) at {_when(key.revoked_at)} UTC; "
          "the API rejects it from the next request on")
    return 0


def add_parser(commands) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    command = actions.add_parser("create", help="create a key and print its token once")
    command.add_argument("--name", required=True, help="who or what uses the key, e.g. billing-service")
    command.add_argument("--scope", action="append", required=True, choices=SCOPES,
                         help="a scope the key grants; repeat for several (admin grants every scope)")
    command.add_argument("--expires-in", type=_expiry_days, metavar="DAYS",
                         help="the key expires after DAYS days (greater than 0, fractions allowed); default: never")
    command.add_argument("--rate-per-second", type=float,
                         help="requests per second the key may make on average (default: CIE_RATE_LIMIT_PER_SECOND)")
    command.add_argument("--burst", type=int,
                         help="requests the key may make at once before the rate applies (default: CIE_RATE_LIMIT_BURST)")
    command.add_argument("--token-file", metavar="PATH",
                         help="write the token to PATH (a new file, mode 600) instead of printing it")
    command.set_defaults(run=_create)

    command = actions.add_parser(
        "list", help="print every key's id, name, scopes, rate limit, creation, last use, expiry and revocation")
    command.set_defaults(run=_list)

    command = actions.add_parser("revoke", help="revoke a key; the API rejects it from the next request on")
    command.add_argument("key_id", type=_key_id, help="the key id that `cie keys list` prints")
    command.set_defaults(run=_revoke)
