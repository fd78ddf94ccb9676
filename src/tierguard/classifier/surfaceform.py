"""How a query template becomes one concrete customer message.

Two steps, both driven by the caller's ``random.Random`` so generation stays reproducible:
:func:`fill` replaces ``{slot}`` markers (order ids, amounts, plans, integrations, error
messages, dates...) with plausible values, and :func:`surface` varies the surface form the
way real users do (greetings, sign-offs, an occasional line of context, casing, dropped
punctuation, a one-letter typo). What the message *means* is chosen by
:mod:`tierguard.classifier.dataset` from :mod:`tierguard.classifier.querytemplates`.

Every draw here consumes the shared generator in a fixed order; changing a list or the
order of the draws changes every generated dataset and the built-in classifiers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

__all__ = ["Filler", "fill", "surface"]

Filler = Callable[[random.Random], str]


def _order_id(r: random.Random) -> str:
    style = r.randrange(4)
    if style == 0:
        return f"#{r.randrange(100000, 999999)}"
    if style == 1:
        return f"{r.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{r.randrange(1000, 99999)}"
    if style == 2:
        return f"ORD-{r.randrange(10000, 99999)}"
    return str(r.randrange(1000000, 9999999))


def _amount(r: random.Random) -> str:
    cur = r.choice(["$", "$", "$", "€", "£"])
    value = r.choice([9, 12, 19, 24, 29, 49, 59, 79, 99, 149, 199, 240, 480])
    cents = r.choice(["", "", ".00", ".99", ".50"])
    return f"{cur}{value}{cents}"


def _pick(options: Sequence[str]) -> Filler:
    return lambda r: r.choice(options)


_FILLERS: dict[str, Filler] = {
    "order": _order_id,
    "amount": _amount,
    "amount2": _amount,
    "plan": _pick(["Starter", "Basic", "Team", "Pro", "Business", "Growth", "Enterprise"]),
    "plan2": _pick(["Starter", "Team", "Pro", "Business", "Enterprise", "annual", "monthly"]),
    "integration": _pick(
        [
            "Slack",
            "Salesforce",
            "HubSpot",
            "Zapier",
            "Shopify",
            "Zendesk",
            "Jira",
            "Google Sheets",
            "Microsoft Teams",
            "QuickBooks",
            "Stripe",
            "Intercom",
        ]
    ),
    "idp": _pick(["Okta", "Azure AD", "Google Workspace", "OneLogin", "Auth0", "Entra ID"]),
    "error": _pick(
        [
            "401 Unauthorized",
            "403 Forbidden",
            "500 Internal Server Error",
            "429 Too Many Requests",
            "invalid_grant",
            "signature mismatch",
            "timeout after 30s",
            "SSL handshake failed",
            "token expired",
            "invalid redirect_uri",
            "duplicate key",
            "rate limit exceeded",
        ]
    ),
    "carrier": _pick(["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "the courier", "DPD"]),
    "day": _pick(
        [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
            "public holidays",
            "Christmas Eve",
            "New Year's Day",
            "Easter Monday",
            "the weekend",
        ]
    ),
    "month": _pick(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ]
    ),
    "date": lambda r: f"the {r.choice(['1st', '3rd', '5th', '12th', '15th', '20th', '28th'])}",
    "seats": lambda r: str(r.choice([2, 3, 4, 5, 8, 10, 12, 15, 20, 25, 40, 50])),
    "days": lambda r: str(r.choice([2, 3, 4, 5, 6, 7, 10, 12, 14, 21])),
    "email": lambda r: (
        f"{r.choice(['anna', 'j.smith', 'mike', 'ops', 'lee.k', 'sara', 'admin', 'tom84'])}"
        f"@{r.choice(['gmail.com', 'outlook.com', 'acme.io', 'example.org', 'yahoo.com'])}"
    ),
    "item": _pick(
        [
            "headphones",
            "the blue backpack",
            "a phone case",
            "the starter kit",
            "running shoes",
            "the monitor",
            "two t-shirts",
            "the coffee grinder",
            "a gift card",
            "the replacement charger",
        ]
    ),
    "city": _pick(["Berlin", "London", "Austin", "Toronto", "Sydney", "Madrid", "Chicago"]),
    "tz": _pick(["EST", "PST", "CET", "GMT", "AEST", "IST"]),
}


def fill(template: str, r: random.Random) -> str:
    """Replace ``{slot}`` markers; unknown slots are a programming error (KeyError)."""
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        slot = out[start + 1 : end]
        out = out[:start] + _FILLERS[slot](r) + out[end + 1 :]
    return out


_OPENERS: tuple[str, ...] = (
    "", "", "", "", "", "Hi,", "Hello,", "hey", "Hi there!", "Good morning,", "Hello team,",
    "Quick question:", "Sorry to bother you,", "Hi support,",
)  # fmt: skip
_CLOSERS: tuple[str, ...] = (
    "", "", "", "", "", "Thanks!", "thanks", "thx", "Thank you.", "Appreciate it.",
    "Thanks in advance.", "Cheers", "please", "asap please",
)  # fmt: skip
_CONTEXT: tuple[str, ...] = (
    "I'm on mobile.",
    "I've been a customer for {days} years.",
    "Writing on behalf of my manager.",
    "Our account is under {email}.",
    "First time contacting you.",
    "I tried the help center first.",
)


def surface(text: str, r: random.Random) -> str:
    """Vary the surface form the way real users do: greetings, casing, punctuation, typos."""
    parts = [r.choice(_OPENERS)]
    if r.random() < 0.08:
        parts.append(fill(r.choice(_CONTEXT), r))
    parts.append(fill(text, r))
    parts.append(r.choice(_CLOSERS))
    out = " ".join(p for p in parts if p)
    roll = r.random()
    if roll < 0.15:
        out = out.lower()
    elif roll < 0.18:
        out = out.upper()
    if r.random() < 0.12:
        out = out.rstrip("?.!")
    if r.random() < 0.06 and len(out) > 12:
        # one adjacent-character swap: a realistic typo, not noise for its own sake
        i = r.randrange(1, len(out) - 2)
        if out[i].isalpha() and out[i + 1].isalpha():
            out = out[:i] + out[i + 1] + out[i] + out[i + 2 :]
    return out
