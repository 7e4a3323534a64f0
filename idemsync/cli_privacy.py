"""``idemsync erase customer ID`` and ``idemsync keys rotate``: personal data.

The logic is in ``infrastructure.privacy``; these commands parse arguments
and print what was done (docs/privacy.md).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from idemsync.common import check_ready
from infrastructure.settings import Settings


def cmd_erase_customer(args: argparse.Namespace, settings: Settings) -> int:
    from infrastructure.bootstrap import bootstrap
    from infrastructure.privacy.erasure import NoSuchNamespace

    check_ready(settings)
    services = bootstrap(settings, deliveries=False)
    try:
        try:
            namespace = services.eraser.namespace_for(args.namespace)
        except (ValueError, NoSuchNamespace) as refused:
            print(f"idemsync: {refused} (--namespace)", file=sys.stderr)
            return 2
        by = f"cli:{getpass.getuser()}"
        erasure = services.eraser.erase(namespace, args.id, by, args.reason)
    finally:
        services.close()
    done = "erased" if erasure.recorded else "was erased before; finished"
    print(f"customer {erasure.customer_id} in {erasure.namespace}: {done}")
    print(f"  event Erased at version {erasure.version} (by {by})")
    if settings.master_key is None:
        print(
            "  no master key ([privacy] master_key): personal fields are stored "
            "in clear; the event log keeps them"
        )
    else:
        key = "destroyed" if erasure.key_destroyed else "destroyed before"
        print(f"  data key {key}: every sealed copy now reads as erased")
    print(f"  raw deliveries redacted: {erasure.deliveries_redacted}")
    print(f"  snapshots dropped: {erasure.snapshots_dropped}")
    if erasure.clear_events:
        print(
            f"  warning: {erasure.clear_events} event(s) hold its fields in clear "
            "(stored before a master key was set): see docs/privacy.md"
        )
        return 1
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from infrastructure.persistence.database import Database
    from infrastructure.privacy.keys import MasterKey
    from infrastructure.privacy.store import SubjectKeys

    if settings.master_key is None:
        print("idemsync: [privacy] master_key is not set", file=sys.stderr)
        return 2
    variable = args.old.removeprefix("env:")
    if not args.old.startswith("env:") or not os.environ.get(variable):
        print(
            "idemsync: --old: env:NAME, a variable holding the old key",
            file=sys.stderr,
        )
        return 2
    old = MasterKey.from_text(os.environ[variable])
    check_ready(settings)
    database = Database.of(settings)
    try:
        count = SubjectKeys(database.engine(), settings.master_key).rewrap(old)
    finally:
        database.close()
    print(f"rewrapped {count} data key(s) with master key {settings.master_key.key_id}")
    return 0


def add_commands(commands: Any) -> None:
    erase = commands.add_parser("erase", help="erase a data subject's personal data")
    kinds = erase.add_subparsers(dest="erase_kind", required=True)
    customer = kinds.add_parser(
        "customer",
        help="erase a customer (GDPR erasure, Shopify customers/redact)",
        description="Record the erasure on the customer, destroy its data key, "
        "redact its raw deliveries (digests kept) and clear its read-model row. "
        "Safe to run again. Exit 1 when events hold its fields in clear.",
    )
    customer.add_argument("id", help="the partner's customer id")
    customer.add_argument(
        "--namespace", help="the customer's namespace (required with several)"
    )
    customer.add_argument(
        "--reason", required=True, help="why (e.g. the request's reference)"
    )
    customer.set_defaults(run=cmd_erase_customer, secrets=False)

    keys = commands.add_parser("keys", help="the master key of personal data")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = key_commands.add_parser(
        "rotate",
        help="rewrap every data key with the configured master key",
        description="After changing [privacy] master_key: rewrap each data "
        "key the old master key wraps. Resumable; run it again if interrupted.",
    )
    rotate.add_argument(
        "--old", required=True, help="env:NAME, the variable holding the old key"
    )
    rotate.set_defaults(run=cmd_keys_rotate, secrets=False)
