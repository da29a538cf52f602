"""``manage.py relay_outbox``: move committed outbox rows to Redis, apart from any
worker (``runworker`` runs the same relay in a thread unless given --no-relay)."""

import signal
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_redisjobs.conf import get_settings
from django_redisjobs.exceptions import RedisJobsConfigurationError
from django_redisjobs.relay import OutboxRelay


class Command(BaseCommand):
    help = (
        "Move jobs committed to the outbox (REDISJOBS['OUTBOX']) to Redis, from "
        "every database in REDISJOBS['OUTBOX_DATABASES'], until SIGTERM or SIGINT. "
        "Several relays may run at once. runworker runs one too, unless given "
        "--no-relay."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Move every row now, however new, then exit with a count "
            "(exit status 1 when a delivery failed).",
        )
        parser.add_argument(
            "--poll",
            type=float,
            default=1.0,
            help="Seconds between sweeps (default 1). Producers move their own rows "
            "at commit; a sweep only finds what they could not.",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help="Rows per database transaction and Redis round trip (default 500).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            databases = get_settings().outbox_databases
        except RedisJobsConfigurationError as err:
            raise CommandError(str(err)) from err
        if options["batch"] < 1:
            raise CommandError("--batch must be 1 or more.")
        if not options["poll"] > 0:
            raise CommandError("--poll must be above 0.")
        relay = OutboxRelay(
            databases,
            batch=options["batch"],
            poll=timedelta(seconds=options["poll"]),
        )
        if options["once"]:
            try:
                moved = relay.sweep(grace=timedelta(0))
            except Exception as err:
                raise CommandError(
                    f"Outbox delivery failed after {relay.delivered} row(s); the "
                    f"rest stay for the next run ({type(err).__name__}: {err})",
                    returncode=1,
                ) from err
            self.stdout.write(f"Moved {moved} outbox row(s) to Redis.")
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: relay.stop())
        self.stdout.write(f"Relaying the outbox of {', '.join(databases)}.")
        relay.run()
        self.stdout.write(f"Relay stopped; moved {relay.delivered} row(s).")
