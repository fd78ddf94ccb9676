"""Queries whose words mislead: the hard cases and the decoys of the synthetic traffic.

Seed 003's loss hid in complex queries that *look* simple, so the generator in
:mod:`tierguard.classifier.dataset` writes about 30 % of complex examples as a
simple-looking opening (``SIMPLE_OPENINGS``, keyed by the simple category imitated) plus
one clause that makes it complex (``HARD_CLAUSES``, keyed by the real complex category).
The reverse trap is ``DECOY_CLAUSES``: harmless clauses with "complex" vocabulary
(refund, charged, integration) appended to some simple queries, so a keyword router fails
both ways. The ordinary phrasings are in :mod:`tierguard.classifier.querytemplates`.

Pure data. The order of every tuple is part of the contract, as there: the holdout split
takes every fourth entry and the draws are positional, so any edit changes the generated
datasets and the built-in classifiers (``tierguard train --builtin all --check``).
"""

from __future__ import annotations

__all__ = ["DECOY_CLAUSES", "HARD_CLAUSES", "SIMPLE_OPENINGS"]

SIMPLE_OPENINGS: dict[str, tuple[str, ...]] = {
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
HARD_CLAUSES: dict[str, tuple[tuple[str, str], ...]] = {
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

# Harmless clauses with "complex" words, appended to some simple queries (decoys).
DECOY_CLAUSES: dict[str, tuple[str, ...]] = {
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
