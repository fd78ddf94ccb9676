"""A deterministic generator of realistic customer-support queries, labelled by tier.

Why a generator and not a downloaded corpus: tierguard fetches nothing at run time and
ships no third-party data, yet the router and the lab must work out of the box with a
classifier trained on something that looks like seed 003's traffic. The same generator
drives the lab's simulated users, so the categories below are the one shared list.

The taxonomy is seed 003's. Simple (cheap tier): account lookups, billing status,
password resets, order tracking, opening hours. Complex (capable tier): refund disputes,
plan-change trade-offs, integration troubleshooting, billing-cycle anomalies. The mix is
about 65 % simple / 35 % complex, as in the seed's representative week.

The hard cases are the point. Seed 003's loss hid in queries that *looked* simple: a
balance question whose real content is a double charge, an order-status question that
is really a refund dispute, a password reset that is really an SSO integration fault.
About 30 % of complex examples are generated that way (``hard=True``, ``looks_like`` =
the simple category they imitate): they open like a simple query and the complexity sits
in one clause. Conversely some simple queries carry "scary" words (refund, charged,
integration) in a harmless clause, so a keyword router fails both ways.

Splits: every template list (plain queries, hard clauses, simple openings) reserves
every fourth template for ``split="holdout"``; ``split="train"`` never uses them and
``split="all"`` (the lab's traffic) uses everything. Evaluating on the holdout split
therefore measures what matters in production, phrasing the classifier has never seen,
instead of re-scoring memorised templates (an iid split of templated data scores 100 %
and says nothing).

Everything is driven by one ``random.Random(seed)``: the same ``(n, seed)`` always yields
the same examples, in the same order, on every platform and Python version >= 3.11.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = [
    "CATEGORIES",
    "CATEGORY_WEIGHTS",
    "COMPLEX_CATEGORIES",
    "DEFAULT_TIERS",
    "HARD_SHARE",
    "SIMPLE_CATEGORIES",
    "SPLITS",
    "Example",
    "generate",
    "main",
    "write_jsonl",
]

DEFAULT_TIERS: tuple[str, str] = ("simple", "complex")

#: category -> tier. Ordered: simple categories first, as in seed 003.
CATEGORIES: dict[str, str] = {
    "account_lookup": "simple",
    "billing_status": "simple",
    "password_reset": "simple",
    "order_tracking": "simple",
    "opening_hours": "simple",
    "refund_dispute": "complex",
    "plan_change": "complex",
    "integration_troubleshooting": "complex",
    "billing_anomaly": "complex",
}
SIMPLE_CATEGORIES: tuple[str, ...] = tuple(c for c, t in CATEGORIES.items() if t == "simple")
COMPLEX_CATEGORIES: tuple[str, ...] = tuple(c for c, t in CATEGORIES.items() if t == "complex")

#: share of traffic per category (sums to 1; simple 0.65, complex 0.35).
CATEGORY_WEIGHTS: dict[str, float] = {
    "account_lookup": 0.15,
    "billing_status": 0.14,
    "password_reset": 0.13,
    "order_tracking": 0.15,
    "opening_hours": 0.08,
    "refund_dispute": 0.10,
    "plan_change": 0.08,
    "integration_troubleshooting": 0.09,
    "billing_anomaly": 0.08,
}

#: share of complex examples that are written to look simple.
HARD_SHARE = 0.30
#: share of simple examples that carry a harmless clause with "complex" vocabulary.
DECOY_SHARE = 0.12


@dataclass(frozen=True)
class Example:
    """One labelled query. ``looks_like`` is set only for hard examples."""

    text: str
    tier: str
    category: str
    hard: bool = False
    looks_like: str | None = None

    def to_json(self) -> str:
        """One JSON line in the training-file format (``tierguard train`` reads it back)."""
        d = asdict(self)
        if d["looks_like"] is None:
            del d["looks_like"]
        return json.dumps(d, ensure_ascii=False)


# --- slot fillers -----------------------------------------------------------------------------

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


def _fill(template: str, r: random.Random) -> str:
    """Replace ``{slot}`` markers; unknown slots are a programming error (KeyError)."""
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        slot = out[start + 1 : end]
        out = out[:start] + _FILLERS[slot](r) + out[end + 1 :]
    return out


# --- templates ----------------------------------------------------------------------------------
# Plain queries per category. Kept deliberately varied: questions, imperatives, fragments,
# first-person stories, terse "agent-speak".

_PLAIN: dict[str, tuple[str, ...]] = {
    "account_lookup": (
        "What email address is on my account?",
        "which email is my account registered under",
        "Can you tell me my account number?",
        "What plan am I currently on?",
        "how do I see my username",
        "Is {email} the email on file?",
        "Can you confirm the phone number on my account?",
        "what's my customer ID",
        "Where can I find my account details?",
        "Am I the admin on our workspace?",
        "How many seats do we have right now?",
        "When did I create my account?",
        "Is my account active?",
        "who is the owner of our account",
        "Can I see which address is saved for shipping?",
        "What name is on the account?",
        "how do i check my profile info",
        "Is my account verified yet?",
        "which workspace am I logged into",
        "Can you look up my account, email is {email}",
        "what's the billing contact on my account",
        "do I have two-factor turned on?",
    ),
    "billing_status": (
        "Has my last payment gone through?",
        "When is my next bill due?",
        "What's my current balance?",
        "Did you receive my payment of {amount}?",
        "Is my invoice for {month} paid?",
        "Where can I download my invoices?",
        "When will I be charged next?",
        "how much is my next invoice",
        "Can you send me a copy of my {month} receipt?",
        "Which card is on file for billing?",
        "is my subscription paid up",
        "what date does my plan renew",
        "Do I have any outstanding payments?",
        "how do I update my billing address",
        "Can I get the invoice as a PDF?",
        "What payment methods do you accept?",
        "Is the {amount} payment pending or complete?",
        "when does my free trial end",
        "how do I change the card you bill",
        "Could you confirm my payment status for order {order}?",
    ),
    "password_reset": (
        "How do I reset my password?",
        "I forgot my password",
        "forgot password, please help",
        "Can you send me a password reset link?",
        "I can't remember my password for {email}",
        "reset password",
        "The password reset link expired, can I get a new one?",
        "How do I change my password?",
        "locked out after too many attempts, how do I reset",
        "I need to reset my password but I don't see the email, can you resend it?",
        "Where is the 'forgot password' option?",
        "can u reset my pw",
        "How long is the reset link valid?",
        "I want to change my login password",
        "Password reset please, account {email}",
        "How do I unlock my account after failed logins?",
        "what are the password requirements",
        "I'd like to set a new password",
    ),
    "order_tracking": (
        "Where is my order?",
        "Where is my order {order}?",
        "Can you track order {order} for me?",
        "When will my package arrive?",
        "has my order shipped yet",
        "What's the tracking number for {order}?",
        "my order {order} hasn't arrived yet, any update?",
        "Which carrier is delivering my order?",
        "Is {carrier} delivering order {order}?",
        "order status {order}",
        "how long does shipping to {city} take",
        "When will {item} ship?",
        "Can I change the delivery address for order {order}?",
        "Did my order go out today?",
        "Estimated delivery date for {order}?",
        "tracking link isn't updating for {order}, when will it move",
        "is my order still processing",
        "How do I track my package?",
        "I ordered {item} on {day}, when will it come?",
    ),
    "opening_hours": (
        "What are your opening hours?",
        "Are you open on {day}?",
        "What time does support close?",
        "When is your support team available?",
        "Is phone support open on {day}?",
        "what time do you open tomorrow",
        "Are you open 24/7?",
        "What are your hours in {tz}?",
        "when can i call you",
        "Is the {city} store open on {day}?",
        "Do you have live chat on weekends?",
        "Opening times for {day}?",
        "until what time is customer service reachable",
        "what hours is the help desk staffed",
    ),
    "refund_dispute": (
        "I was charged {amount} for {item} that I returned {days} days ago and still have no "
        "refund. Your agent promised it last week. I want it escalated.",
        "You refused my refund for order {order} saying it was outside the window, but it "
        "arrived broken and I reported it within {days} days. Please review this.",
        "My refund for {order} was only partial, {amount} instead of {amount2}, nobody "
        "explained the deduction.",
        "I disputed the charge with my bank and now my account is suspended. I only did that "
        "because the refund never came. How do we resolve this?",
        "The item was damaged, I sent photos, the claim was rejected without a reason. I want "
        "a full refund or a replacement, not store credit.",
        "I cancelled within the trial but was charged {amount} anyway and the refund request "
        "was denied. This is not what your terms say.",
        "Second time asking: you said the refund for {order} was processed on {date} but my "
        "bank shows nothing and they say there is no pending credit.",
        "Refund was issued to a card that no longer exists, how do I get the money?",
        "I returned {item} but you refunded the wrong order and charged a restocking fee I "
        "was told wouldn't apply.",
        "Why was my refund request for {order} closed? I still want my {amount} back and the "
        "seller is not answering.",
        "I want to contest the decision on my refund claim, the package was marked delivered "
        "to the wrong address",
        "got store credit instead of a refund to my card, I never agreed to that",
    ),
    "plan_change": (
        "We have {seats} users on {plan}. Would {plan2} be cheaper if we also need SSO and "
        "audit logs, or should we buy the add-ons?",
        "If I downgrade from {plan} to {plan2} mid-cycle, do I lose the data over the new "
        "limit and do I get prorated credit?",
        "Should we switch to annual billing? We might drop to {seats} seats in {month}.",
        "What happens to our integrations and API limits if we move from {plan} to {plan2}?",
        "We're comparing {plan} for {seats} seats against {plan2} with usage pricing. Which "
        "works out cheaper at around {amount} a month?",
        "Can I upgrade only part of the team to {plan2} and keep the rest on {plan}?",
        "I'm on a legacy {plan} price; if I change plans will I lose the discount for good?",
        "We need more storage but not more seats. Is upgrading to {plan2} the only option or "
        "is there an add-on?",
        "thinking about downgrading to {plan2} but we rely on the {integration} sync, does it "
        "stay available?",
        "How would merging our two workspaces into one {plan2} subscription affect billing "
        "and existing invoices?",
        "pros and cons of {plan} vs {plan2} for a {seats}-person agency?",
        "We were promised a nonprofit discount when we move to {plan2}, how does that combine "
        "with annual billing?",
    ),
    "integration_troubleshooting": (
        "Our {integration} integration stopped syncing yesterday with error {error}. We "
        "already reconnected it twice.",
        "Webhooks from your API are arriving out of order and sometimes twice, which breaks "
        "our idempotency checks.",
        "SSO through {idp} fails for new users with {error}, existing users are fine.",
        "The {integration} connector creates duplicate contacts every time it runs.",
        "API calls started returning {error} after we rotated our keys, even with the new key.",
        "Our {integration} app shows connected but no data has come through since {day}.",
        "OAuth redirect fails with {error} when we install the app in a second workspace.",
        "SCIM provisioning from {idp} creates users but doesn't assign them to groups.",
        "The export to {integration} times out for accounts with more than {seats}k rows.",
        "Rate limits seem lower than documented, we get {error} at about half the quota.",
        "fields mapped in {integration} come back empty after the last update",
        "Webhook signature verification fails with {error}, we're using the secret from the "
        "dashboard",
        "After migrating to {idp}, the {integration} integration keeps asking users to log in "
        "again",
    ),
    "billing_anomaly": (
        "I was charged twice this month, {amount} on {date} and again a few days later.",
        "My bill jumped from {amount} to {amount2} without any change in seats.",
        "Why did my billing date move from {date} to a different day this month?",
        "I'm being charged for {seats} seats but we only have {days} active users.",
        "You charged me in euros instead of dollars and my bank added a conversion fee.",
        "The invoice shows a prorated charge I don't understand after I removed users.",
        "I was billed for the annual plan even though I picked monthly at checkout.",
        "Tax on my invoice changed although my address didn't, why?",
        "There's a {amount} charge labelled 'adjustment' on my statement with no explanation.",
        "My credit from last month wasn't applied and I was charged the full {amount}.",
        "we got charged after cancelling in {month}, the account was closed",
        "two invoices for the same period with different amounts, which one is right?",
    ),
}

# --- hard cases: a simple-looking opening plus the clause that makes it complex ----------------

_SIMPLE_OPENINGS: dict[str, tuple[str, ...]] = {
    "account_lookup": (
        "What plan am I on?",
        "how many seats do we have",
        "Can you check my account?",
        "what's on my account",
        "Quick account question.",
        "Which plan is my account on?",
        "who's the admin on our account?",
        "Can you look up my account?",
        "account question",
    ),
    "billing_status": (
        "What's my balance?",
        "Has my payment gone through?",
        "When is my next bill?",
        "Is my invoice paid?",
        "quick billing question",
        "What's my current bill?",
        "billing status?",
        "When will I be charged?",
        "can you check my invoice",
    ),
    "password_reset": (
        "How do I reset my password?",
        "password reset please",
        "I can't log in.",
        "forgot my password",
        "Reset link not working.",
        "can't sign in",
        "Locked out of my account.",
        "how do I change my password?",
    ),
    "order_tracking": (
        "Where is my order?",
        "Where is order {order}?",
        "order status?",
        "Has my package shipped?",
        "tracking for {order}?",
        "When will my order arrive?",
        "Any update on my package?",
        "has {order} shipped?",
    ),
    "opening_hours": (
        "Are you open on {day}?",
        "What time does support close?",
        "When are you open?",
        "what are your hours",
        "Is billing support open on {day}?",
        "Can I call you today?",
        "is anyone there on {day}?",
        "when does chat open?",
    ),
}

# complex category -> (simple category it hides behind, complicating clause)
_HARD_CLAUSES: dict[str, tuple[tuple[str, str], ...]] = {
    "billing_anomaly": (
        ("billing_status", "It shows {amount} but I was charged {amount2} yesterday."),
        ("billing_status", "The date moved and I got billed twice."),
        ("billing_status", "it says paid but my card was declined and now there's a late fee"),
        ("billing_status", "Why is it higher than last month? Nothing changed."),
        ("billing_status", "It's {amount2} more than usual."),
        ("billing_status", "there's a second charge I don't recognise"),
        ("account_lookup", "We're billed for {seats} seats but only use {days}."),
        ("account_lookup", "It says {plan} but I'm paying the {plan2} price."),
        ("opening_hours", "I need someone today, I was charged after I cancelled."),
        ("billing_status", "The amount doesn't match the quote."),
        ("billing_status", "I was charged on {date} and again on the 9th."),
        ("account_lookup", "It shows two active subscriptions and I'm paying for both."),
        ("billing_status", "There's a fee I never agreed to."),
    ),
    "refund_dispute": (
        ("order_tracking", "Tracking says delivered but nothing arrived and I want my money back."),
        ("order_tracking", "The seller says it's lost but refuses to refund."),
        ("order_tracking", "It came back to you {days} days ago and I still have no refund."),
        ("order_tracking", "I returned it, where's my refund"),
        ("order_tracking", "It's been {days} days, cancel it and refund me."),
        ("billing_status", "I was promised a refund of {amount} and it's not there."),
        ("account_lookup", "My account was suspended after a chargeback on a refund you denied."),
        ("opening_hours", "I need to dispute a refund decision before the deadline."),
        ("order_tracking", "It arrived broken and the claim was rejected."),
        ("order_tracking", "I got the wrong item and you want me to pay for the return."),
        ("billing_status", "you said the refund was sent on {date}, my bank has nothing"),
        ("order_tracking", "Support closed my claim but the parcel never came."),
    ),
    "integration_troubleshooting": (
        ("password_reset", "We log in through {idp} SSO and the reset page loops."),
        ("password_reset", "Only users provisioned from {idp} get {error}."),
        ("password_reset", "The reset email never arrives for users synced from {integration}."),
        ("password_reset", "It started after we enabled SAML."),
        ("password_reset", "our API key stopped working too, {error}"),
        ("password_reset", "since the {idp} migration nobody on the team can get in"),
        ("account_lookup", "The {integration} sync shows a different plan than the dashboard."),
        ("opening_hours", "Our {integration} integration is down and we need an engineer."),
        ("order_tracking", "Orders from our {integration} store aren't syncing, {error}."),
        (
            "password_reset",
            "the reset works but {integration} still rejects the login with {error}",
        ),
        ("account_lookup", "Users created through {idp} don't show up in the seat count."),
        ("password_reset", "we get {error} from the API right after resetting"),
    ),
    "plan_change": (
        ("account_lookup", "Would {plan2} be cheaper if we add {seats} seats?"),
        ("account_lookup", "Should we move to annual before the price change?"),
        ("account_lookup", "If I downgrade do I keep my data?"),
        ("account_lookup", "is it worth switching to {plan2} for the {integration} add-on"),
        ("billing_status", "Would annual billing save us money with {seats} users?"),
        ("billing_status", "Should I downgrade before it renews?"),
        ("opening_hours", "My trial ends then and I need to decide between {plan} and {plan2}."),
        ("opening_hours", "I want to talk through downgrading without losing our discount."),
        ("account_lookup", "can I split the team across {plan} and {plan2}?"),
        ("billing_status", "Would switching to {plan2} now be prorated or start next cycle?"),
        ("account_lookup", "What would we lose moving down to {plan2}?"),
        ("opening_hours", "I'd like advice on whether {plan2} fits a team of {seats}."),
    ),
}

# Indirect forms of simple questions, combined with a shared prefix ("Could you check
# when my next bill is due"): the combinatorial part of the simple traffic.
_INDIRECT: dict[str, tuple[str, ...]] = {
    "account_lookup": (
        "which email my account uses",
        "what plan we are on",
        "who the admin of our workspace is",
        "what my account number is",
        "how many seats we're paying for",
        "whether my account is still active",
        "what phone number you have for me",
        "which address is saved on my profile",
        "when my account was created",
        "what username I signed up with",
        "if two-factor is enabled on my login",
        "whose name the account is under",
    ),
    "billing_status": (
        "when my next bill is due",
        "if my last payment went through",
        "what my current balance is",
        "whether the {month} invoice is paid",
        "when I'll be charged next",
        "how much my next invoice will be",
        "which card you bill",
        "where I download my receipts",
        "if there's anything outstanding on my account",
        "what date my subscription renews",
        "whether you got my {amount} payment",
        "when my trial ends",
    ),
    "password_reset": (
        "how to reset my password",
        "how I change my password",
        "where the password reset link is",
        "why the reset email hasn't arrived yet",
        "how long the reset link stays valid",
        "how to unlock my account after too many attempts",
        "what the password rules are",
        "how to get a new reset link",
        "how I set a new password on the app",
        "if you can resend the reset email to {email}",
    ),
    "order_tracking": (
        "where my order is",
        "when order {order} will arrive",
        "whether my package has shipped",
        "what the tracking number for {order} is",
        "which carrier has my parcel",
        "when {item} will be delivered",
        "how long delivery to {city} takes",
        "if I can change the delivery address for {order}",
        "what the estimated delivery date is",
        "if {carrier} picked up my order yet",
        "why tracking for {order} hasn't updated today",
        "how to track my package",
    ),
    "opening_hours": (
        "what your opening hours are",
        "if you're open on {day}",
        "what time support closes today",
        "when the phone line opens",
        "whether live chat runs on {day}",
        "what your hours are in {tz}",
        "if the {city} office is open on {day}",
        "until when I can call",
        "when the help desk is staffed",
        "if you're open around the clock",
    ),
}
_PREFIXES: tuple[str, ...] = (
    "Can you tell me",
    "Could you check",
    "I'd like to know",
    "Please let me know",
    "need to know",
    "can u check",
    "I'm trying to find out",
    "Do you know",
    "wondering",
    "Could someone confirm",
    "Just checking",
    "I want to know",
)

# Complex queries built from a problem statement and what the customer asks for.
_PROBLEMS: dict[str, tuple[str, ...]] = {
    "refund_dispute": (
        "my refund for {order} was denied even though the item arrived damaged",
        "I returned {item} {days} days ago and the refund still hasn't shown up",
        "you refunded {amount} but I paid {amount2}",
        "the refund went to a card I closed last year",
        "the claim for {order} was rejected without any explanation",
        "I was told I'd get a refund and then the ticket was closed",
        "my chargeback was reversed and now you're billing me again",
        "you kept a restocking fee nobody mentioned",
        "the package was marked delivered to the wrong address and the refund was refused",
        "I was offered store credit but I paid by card and want the money back",
    ),
    "plan_change": (
        "we're deciding between {plan} and {plan2} for {seats} people",
        "we might downgrade to {plan2} but need to keep the {integration} sync",
        "I'm considering annual billing but our headcount may drop to {seats}",
        "moving from {plan} to {plan2} mid-cycle and I'm not sure how proration works",
        "we want SSO, which seems to need {plan2}, but only half the team needs it",
        "our legacy {plan} discount might disappear if we change plans",
        "we're merging two workspaces and need to choose one subscription",
        "the usage-based option could be cheaper than {seats} seats on {plan}",
        "we need more storage but not more users",
        "I want to pause the subscription for {days} weeks instead of cancelling",
    ),
    "integration_troubleshooting": (
        "the {integration} integration stopped syncing and reconnecting didn't help",
        "SSO through {idp} returns {error} for some users",
        "webhooks are delivered twice and out of order",
        "API requests fail with {error} since we rotated keys",
        "the {integration} connector creates duplicate records on every run",
        "SCIM from {idp} provisions users but not their groups",
        "field mappings to {integration} come back empty since the update",
        "exports to {integration} time out on big accounts",
        "users get logged out of {integration} every hour after the {idp} switch",
        "the OAuth install fails with {error} in our second workspace",
    ),
    "billing_anomaly": (
        "I was charged twice this month",
        "my bill went from {amount} to {amount2} with no change on our side",
        "the billing date moved from {date} without warning",
        "we're billed for {seats} seats but have far fewer users",
        "I got charged in euros instead of dollars",
        "there's an unexplained {amount} adjustment on the invoice",
        "last month's credit wasn't applied",
        "I was billed annually though I chose monthly",
        "the tax on the invoice changed but my address didn't",
        "there are two invoices for the same period",
    ),
}
_ASKS: tuple[str, ...] = (
    "What are my options?",
    "Please escalate this.",
    "I need this fixed before the end of the month.",
    "Can someone who can actually change this look into it?",
    "What do you suggest?",
    "How do we sort this out?",
    "I'd like a written explanation.",
    "Can you walk me through it?",
    "This is the third time I'm writing.",
    "What would you recommend?",
)

# Harmless clauses with "complex" words, appended to some simple queries (decoys).
_DECOY_CLAUSES: dict[str, tuple[str, ...]] = {
    "account_lookup": (
        "The refund from last month came through fine, just need this.",
        "Our {integration} integration works great by the way.",
    ),
    "billing_status": (
        "No problem with the charge, I just need it for my records.",
        "The refund arrived, thanks, this is about the next invoice.",
    ),
    "password_reset": (
        "Not an SSO account, just regular email login.",
        "Nothing wrong with the integration, I just forgot it.",
    ),
    "order_tracking": (
        "The refund for my other order already arrived, this is a new one.",
        "No issue, just want to plan to be home.",
    ),
    "opening_hours": (
        "I want to ask about my plan, nothing urgent.",
        "It's about a billing question, nothing urgent.",
    ),
}

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


def _surface(text: str, r: random.Random) -> str:
    """Vary the surface form the way real users do: greetings, casing, punctuation, typos."""
    parts = [r.choice(_OPENERS)]
    if r.random() < 0.08:
        parts.append(_fill(r.choice(_CONTEXT), r))
    parts.append(_fill(text, r))
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


SPLITS: tuple[str, ...] = ("all", "train", "holdout")
_HELD_PERIOD = 4
_HELD_OFFSET = 2


def _subset(options: Sequence[T], split: str) -> Sequence[T]:
    """The templates a split may use (lists shorter than 3 are shared by all splits)."""
    if split == "all" or len(options) < 3:
        return options
    held = [x for i, x in enumerate(options) if i % _HELD_PERIOD == _HELD_OFFSET]
    if split == "holdout":
        return held
    return [x for i, x in enumerate(options) if i % _HELD_PERIOD != _HELD_OFFSET]


def _weighted_category(r: random.Random) -> str:
    x = r.random()
    acc = 0.0
    for cat, w in CATEGORY_WEIGHTS.items():
        acc += w
        if x < acc:
            return cat
    return next(reversed(CATEGORY_WEIGHTS))


def _one(r: random.Random, split: str) -> Example:
    category = _weighted_category(r)
    tier = CATEGORIES[category]
    if tier == "complex" and r.random() < HARD_SHARE:
        looks_like, clause = r.choice(_subset(_HARD_CLAUSES[category], split))
        opening = r.choice(_subset(_SIMPLE_OPENINGS[looks_like], split))
        text = f"{opening} {clause}"
        return Example(_surface(text, r), tier, category, hard=True, looks_like=looks_like)
    roll = r.random()
    if tier == "simple" and roll < 0.4:
        core = r.choice(_subset(_INDIRECT[category], split))
        text = f"{r.choice(_PREFIXES)} {core}?"
    elif tier == "complex" and roll < 0.5:
        problem = r.choice(_subset(_PROBLEMS[category], split))
        text = f"{problem[0].upper()}{problem[1:]}. {r.choice(_ASKS)}"
    else:
        text = r.choice(_subset(_PLAIN[category], split))
    if tier == "simple" and r.random() < DECOY_SHARE:
        text = f"{text} {r.choice(_DECOY_CLAUSES[category])}"
    return Example(_surface(text, r), tier, category)


def generate(n: int, seed: int = 0, split: str = "all") -> list[Example]:
    """``n`` examples drawn from seed 003's traffic mix; identical for identical arguments.

    ``split`` is ``"all"`` (every template: simulated traffic), ``"train"`` or
    ``"holdout"`` (disjoint template sets, see the module docstring).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    r = random.Random(seed)
    return [_one(r, split) for _ in range(n)]


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write examples as JSON lines (the ``tierguard train`` input format); return the count."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(ex.to_json() + "\n")
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tierguard.classifier.dataset --n 300 --seed 7 --out sample.jsonl``."""
    import argparse

    p = argparse.ArgumentParser(description="write a synthetic support-query dataset")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=SPLITS, default="all")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    write_jsonl(generate(args.n, args.seed, args.split), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
