"""A deterministic demo warehouse: customers with countries, plans and activity, a few deliberately bad rows,
and segment views. The same seed always gives the same rows."""

import random
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa

from espcore.warehouse import BaseWarehouse, quote_ident

FIRST = [
    "Ann",
    "Boris",
    "Chen",
    "Dana",
    "Emil",
    "Fatima",
    "Goran",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marta",
    "Nils",
    "Olga",
    "Pavel",
    "Rosa",
    "Sven",
    "Tara",
    "Uma",
    "Vera",
    "Wim",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Novak",
    "Schmidt",
    "Rossi",
    "Garcia",
    "Kowalski",
    "Dubois",
    "Jensen",
    "Silva",
    "Ivanova",
    "Haddad",
    "Okafor",
    "Tanaka",
    "Moreau",
    "Berg",
    "Petrov",
]
COUNTRIES = ["DE", "FR", "NL", "PL", "ES", "IT", "SE", "US", "GB", "IR", "UA", "BR"]
EU = ("DE", "FR", "NL", "PL", "ES", "IT", "SE")
PLANS = ["trial", "basic", "pro", "enterprise"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "demo.example"]

#: rows that must be rejected or suppressed by a correct sync
BAD_ROWS: list[dict[str, Any]] = [
    {"email": "not-an-email", "why": "invalid syntax"},
    {"email": "bob@@example.com", "why": "invalid syntax"},
    {"email": None, "why": "null email"},
    {"email": "Ann.Novak0@Example.com ", "why": "case/space variant of customer 0 (duplicate key)"},
]
BLACKLISTED_EMAIL = "blocked.customer@example.com"


def customers(n: int = 200, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` customers plus the bad rows; deterministic for a seed."""
    rng = random.Random(seed)
    base = datetime(2026, 1, 1)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        email = f"{first.lower()}.{last.lower()}{i}@{DOMAINS[i % len(DOMAINS)]}"
        rows.append(
            {
                "customer_id": i + 1,
                "email": email,
                "first_name": first,
                "last_name": last,
                "country": COUNTRIES[rng.randrange(len(COUNTRIES))],
                "plan": PLANS[rng.randrange(len(PLANS))],
                "active": rng.random() < 0.8,
                "signed_up": (base - timedelta(days=rng.randrange(900))).date(),
                "last_seen": base - timedelta(days=rng.randrange(120), minutes=rng.randrange(1440)),
                "updated_at": base,
            }
        )
    extra = [dict(r) for r in BAD_ROWS] + [{"email": BLACKLISTED_EMAIL, "why": "blacklisted at the provider"}]
    for j, bad in enumerate(extra):
        rows.append(
            {
                "customer_id": n + j + 1,
                "email": bad["email"],
                "first_name": "Bad",
                "last_name": f"Row{j}",
                "country": "DE",
                "plan": "basic",
                "active": True,
                "signed_up": date(2025, 6, 1),
                "last_seen": base,
                "updated_at": base,
            }
        )
    return rows


SEGMENT_VIEWS: dict[str, str] = {
    "segment_active_eu": "SELECT * FROM customers WHERE active AND country IN ('DE','FR','NL','PL','ES','IT','SE')",
    "segment_trial_users": "SELECT * FROM customers WHERE plan = 'trial'",
    "segment_all_active": "SELECT * FROM customers WHERE active",
}


def seed_demo_suppressions(sandbox: Any) -> None:
    """Put the demo's blacklisted customer on the sandbox account's own suppression list, through the provider's
    API where it has an account-wide one (:meth:`~espcore.sandbox.base.ProviderSandbox.seed_suppressions`)."""
    sandbox.seed_suppressions([BLACKLISTED_EMAIL], comment="demo: complained")


def build_demo_warehouse(wh: BaseWarehouse, *, n: int = 200, seed: int = 7) -> dict[str, int]:
    """Create (or replace) the deterministic demo tables and segment views; returns row counts.

    Demo only: this replaces ``customers`` and the segment views, so it is never part of the production
    definitions; the demo runs it on its own DuckDB file."""
    rows = customers(n, seed)
    with wh.connect() as con:
        con.load_temp("demo_rows", pa.Table.from_pylist(rows))
        with con.transaction():
            for name in SEGMENT_VIEWS:
                con.execute(f"DROP VIEW IF EXISTS {quote_ident(name)}")
            con.execute("DROP TABLE IF EXISTS customers")
            con.execute("CREATE TABLE customers AS SELECT * FROM demo_rows")
            for name, sql in SEGMENT_VIEWS.items():
                con.execute(f"CREATE VIEW {quote_ident(name)} AS {sql}")
        con.drop_temp("demo_rows")
        counts = {"customers": len(rows)}
        for name in SEGMENT_VIEWS:
            row = con.fetchone(f"SELECT count(*) FROM {quote_ident(name)}")
            counts[name] = int(row[0]) if row else 0
    return counts
