"""Kafka access for production: SASL/SCRAM principals and the ACLs that bind each to its topics.

Every Kafka client of the project takes its connection options from `client_options(settings)`.
`acl_plan` says, for one street and topic prefix, what each principal may do — each service reads
and writes only its own topics; an owner reads only `wangge.tasks.<its code>` and writes only
`wangge.task-updates`; each reporting bridge (a terminal gateway, the 12345 hotline bridge) is a principal of its own,
`bridge-<name>`, that writes `wangge.reports` and reads `wangge.replies` (as intake does, for Open311's updates) in
consumer groups of its own;
only notify reads `wangge.contacts`; intake and notify may delete records (DeleteRecords) from the one topic each
reads residents' phones on, `wangge.reports` and `wangge.contacts`, and nothing else may; only the services read
`wangge.credentials`, which the administrators' CLI and supervision (people's sessions) write; supervision writes
`wangge.street-config`, which routing and notify read.

`python -m shared.kafka_security plan --out SPEC` writes the users (with fresh passwords, also
written as env files per principal) and ACLs for `deploy/local/kafka.sh setup-security SPEC`.
"""
from __future__ import annotations

import argparse
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from shared.settings import Settings, get_settings
from shared.street import StreetDataError, load_street

SERVICES = ("intake", "routing", "supervision", "notify")
ADMIN = "admin"
# The reporting bridges of a deployment when none are named (`plan --bridge NAME`): the terminals' gateway and the
# 12345 hotline bridge, each its own SCRAM user, so that one bridge's password opens nothing of another's (its
# consumer groups), and one is shut out by removing its user alone. Which bridge sent a report is told by its
# credential's signature (shared/signing.py), which intake also scopes de-duplication to: Kafka does not tell a
# consumer which user produced a record.
DEFAULT_BRIDGES = ("terminals", "hotline")
_BRIDGE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,40}")


# The connection options of each broker this process talks to, by bootstrap address: one principal
# per process and broker (a service, a CLI). Registered once from settings; read by every client.
_by_bootstrap: dict[str, dict[str, Any]] = {}
_max_replication: dict[str, int] = {}


def use(settings: Settings) -> None:
    """Make every Kafka client of this process connect to settings.kafka_bootstrap with its security,
    and create topics there with at most the configured replication factor."""
    _by_bootstrap[settings.kafka_bootstrap] = client_options(settings)
    _max_replication[settings.kafka_bootstrap] = settings.kafka_replication_factor


def max_replication(bootstrap: str) -> int:
    """The most copies a topic created on this cluster gets (WANGGE_KAFKA_REPLICATION_FACTOR, default 3); what it
    gets is read from the cluster (shared/topics.py `cluster_replication`)."""
    return _max_replication.get(bootstrap, 3)


def options(bootstrap: str) -> dict[str, Any]:
    """The security options for a bootstrap address (none unless `use` registered some)."""
    return dict(_by_bootstrap.get(bootstrap, {}))


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security (nothing extra for PLAINTEXT)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    return {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_username,
        "sasl_plain_password": settings.kafka_password,
    }


def owner_principal(owner: str) -> str:
    """The Kafka user of an owner's system."""
    return f"owner-{owner}"


def bridge_principal(bridge: str) -> str:
    """The Kafka user of one reporting bridge (a terminal gateway, the hotline bridge). Names are lower-case letters,
    digits and '-', so that a bridge's group prefix (`bridge-<name>.`) is never the start of another's."""
    if not _BRIDGE_NAME.fullmatch(bridge):
        raise ValueError(f"a bridge's name is lower-case letters, digits and '-' (at most 41), not {bridge!r}")
    return f"bridge-{bridge}"


@dataclass(frozen=True)
class Acl:
    """One allow rule: principal may `operation` on the resource (LITERAL name or PREFIXED)."""

    principal: str
    resource: str  # TOPIC, GROUP, CLUSTER
    name: str
    pattern: str  # LITERAL or PREFIXED
    operation: str  # READ, WRITE, CREATE, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS

    def line(self) -> str:
        """The spec line SecuritySetup.java reads."""
        return "\t".join(("acl", self.principal, self.resource, self.name, self.pattern, self.operation))


def acl_plan(prefix: str, owners: Iterable[str], group_prefix: str | None = None,
             bridges: Iterable[str] = DEFAULT_BRIDGES) -> list[Acl]:
    """Every ACL of a street's deployment whose topics (and consumer groups) carry `prefix`."""
    p, g = prefix, group_prefix if group_prefix is not None else prefix
    t = {name: f"{p}wangge.{name}" for name in ("reports", "cases", "task-updates", "replies", "credentials", "contacts",
                                                   "street-config")}
    tasks = f"{p}wangge.tasks."
    reads = {
        # cases and replies: every public step of a case and what the resident was told, for Open311's updates
        "intake": [t["reports"], t["cases"], t["replies"], t["credentials"]],
        "routing": [t["cases"], t["credentials"], t["street-config"]],
        "supervision": [t["cases"], t["task-updates"], t["credentials"]],
        "notify": [t["cases"], t["contacts"], t["credentials"], t["street-config"]],
    }
    writes = {
        "intake": [t["cases"], t["contacts"]],
        "routing": [t["cases"]],
        # credentials: people's sessions are registry credentials that supervision issues and revokes at sign-in and
        # sign-out (services/supervision/people.py); it already holds the accounts, so it is their issuer.
        "supervision": [t["cases"], t["street-config"], t["credentials"]],
        # credentials: residents' sessions, which notify issues and ends (services/notify/residents.py)
        "notify": [t["cases"], t["replies"], t["credentials"]],
    }
    # DeleteRecords: each of the two topics that carry residents' phones is cut by its one reader below what it has
    # committed (shared/trim.py); no one else may delete from them (a bridge could otherwise drop unread reports).
    deletes = {"intake": [t["reports"]], "notify": [t["contacts"]]}
    acls: list[Acl] = []
    for service in SERVICES:
        acls.append(Acl(service, "GROUP", f"{g}wangge-{service}", "PREFIXED", "READ"))
        acls.append(Acl(service, "CLUSTER", "kafka-cluster", "LITERAL", "DESCRIBE"))
        for topic in reads[service]:
            acls.append(Acl(service, "TOPIC", topic, "LITERAL", "READ"))
            # What a service cannot take goes to <topic>.rejected, which it may create and write.
            for op in ("WRITE", "CREATE", "DESCRIBE"):
                acls.append(Acl(service, "TOPIC", f"{topic}.rejected", "LITERAL", op))
        for topic in writes[service]:
            for op in ("WRITE", "CREATE", "DESCRIBE"):
                acls.append(Acl(service, "TOPIC", topic, "LITERAL", op))
        for topic in deletes.get(service, []):
            acls.append(Acl(service, "TOPIC", topic, "LITERAL", "DELETE"))
    # Supervision's live-figures process (faust, python -m services.supervision.live) runs as supervision: its group
    # is under supervision's prefix already; its tables' changelog topics are its own, and it holds them to their
    # hourly segments (shared.topics: a changelog made before it had one is given it at the next start).
    for op in ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"):
        acls.append(Acl("supervision", "TOPIC", f"{p}wangge-supervision-live", "PREFIXED", op))
    for service in ("routing", "supervision"):  # work and urge notices for every owner
        for op in ("WRITE", "CREATE", "DESCRIBE"):
            acls.append(Acl(service, "TOPIC", tasks, "PREFIXED", op))
    for owner in owners:
        who = owner_principal(owner)
        acls += [Acl(who, "TOPIC", f"{tasks}{owner}", "LITERAL", "READ"),
                 Acl(who, "GROUP", f"{g}{who}", "PREFIXED", "READ"),
                 Acl(who, "TOPIC", t["task-updates"], "LITERAL", "WRITE"),
                 Acl(who, "TOPIC", t["task-updates"], "LITERAL", "DESCRIBE")]
    for bridge in bridges:
        who = bridge_principal(bridge)
        acls += [Acl(who, "TOPIC", t["reports"], "LITERAL", "WRITE"),
                 Acl(who, "TOPIC", t["reports"], "LITERAL", "DESCRIBE"),
                 Acl(who, "TOPIC", t["replies"], "LITERAL", "READ"),
                 Acl(who, "TOPIC", t["reports"] + ".rejected", "LITERAL", "READ"),
                 Acl(who, "GROUP", f"{g}{who}.", "PREFIXED", "READ")]
    return acls


def street_owners(street_dir: Path) -> list[str]:
    """Every owner code of a street: its departments and its communities."""
    street = load_street(street_dir)
    return sorted(street.departments) + sorted(g.code for g in street.level("community"))


def principals(owners: Iterable[str], bridges: Iterable[str] = DEFAULT_BRIDGES) -> list[str]:
    """Every Kafka user of a deployment (the broker's admin is created when its storage is formatted)."""
    return [*SERVICES, *(bridge_principal(b) for b in bridges), *(owner_principal(o) for o in owners)]


def main(argv: list[str] | None = None) -> int:
    """Command line: write the users and ACLs of the secure profile."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m shared.kafka_security",
        description="Write the SCRAM users (fresh passwords) and ACLs for the secure Kafka profile: each service "
        "reads and writes only its own topics, each owner reads only its task topic and writes only "
        "wangge.task-updates. Apply with: WANGGE_KAFKA_SECURITY=scram deploy/local/kafka.sh setup-security SPEC",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = sub.add_parser("plan", help="write the spec file and one env file per principal")
    plan.add_argument("--out", type=Path, required=True, help="the spec file to write (mode 600: it holds passwords)")
    plan.add_argument("--env-dir", type=Path, help="where to write <principal>.env with WANGGE_KAFKA_* (default: beside --out)")
    plan.add_argument("--street", type=Path, default=settings.street_dir, help="street folder (its owners)")
    plan.add_argument("--prefix", default=settings.topic_prefix, help="topic prefix (default: none, the contract's names)")
    plan.add_argument("--bridge", action="append", dest="bridges", metavar="NAME",
                      help="a reporting bridge, its own user bridge-NAME (repeat for each terminal gateway and the "
                           f"hotline bridge; default: {', '.join(DEFAULT_BRIDGES)})")
    args = parser.parse_args(argv)
    bridges = tuple(args.bridges or DEFAULT_BRIDGES)
    try:
        owners = street_owners(args.street)
        for bridge in bridges:
            bridge_principal(bridge)
    except StreetDataError as exc:
        print(f"cannot read the street: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    env_dir = args.env_dir or args.out.parent
    env_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    users = principals(owners, bridges)
    for user in users:
        password = secrets.token_urlsafe(24)
        lines.append("\t".join(("user", user, password)))
        env = env_dir / f"{user}.env"
        env.write_text(f"WANGGE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\nWANGGE_KAFKA_USERNAME={user}\n"
                       f"WANGGE_KAFKA_PASSWORD={password}\n", encoding="utf-8")
        env.chmod(0o600)
    lines += [acl.line() for acl in acl_plan(args.prefix, owners, bridges=bridges)]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.chmod(0o600)
    print(f"{len(users)} users and {len(lines) - len(users)} ACLs written to {args.out}; "
          f"env files in {env_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
