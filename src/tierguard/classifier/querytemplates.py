"""What simulated customers say: the ordinary query templates of every support category.

Pure data, read by :mod:`tierguard.classifier.dataset` (which picks among them and labels
the result) and filled in by :mod:`tierguard.classifier.surfaceform` (``{slot}`` markers).
Keyed by the category names of ``dataset.CATEGORIES``:

- plain queries per category (``PLAIN``);
- indirect simple questions joined to a shared prefix (``INDIRECT`` + ``PREFIXES``);
- complex problem statements joined to a request (``PROBLEMS`` + ``ASKS``).

The misleading ones (hard cases that look simple, decoys that look complex) are in
:mod:`tierguard.classifier.querytraps`.

The order of every tuple is part of the contract: ``dataset`` reserves every fourth entry
for the holdout split and draws by position from one seeded generator, so reordering,
inserting or removing a template changes every generated dataset and the built-in
classifiers trained on it (``tierguard train --builtin all --check`` says so).
"""

from __future__ import annotations

__all__ = [
    "ASKS",
    "INDIRECT",
    "PLAIN",
    "PREFIXES",
    "PROBLEMS",
]

# Plain queries per category. Kept deliberately varied: questions, imperatives, fragments,
# first-person stories, terse "agent-speak".

PLAIN: dict[str, tuple[str, ...]] = {
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

# Indirect forms of simple questions, combined with a shared prefix ("Could you check
# when my next bill is due"): the combinatorial part of the simple traffic.
INDIRECT: dict[str, tuple[str, ...]] = {
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
PREFIXES: tuple[str, ...] = (
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
PROBLEMS: dict[str, tuple[str, ...]] = {
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
ASKS: tuple[str, ...] = (
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
