"""SendPulse status codes and their explanations, as the SendPulse API documents them."""

BOOK_STATUS = {
    0: "Active",
    1: "Marked as deleted",
    3: "Awaiting the user's reply to a moderator",
    4: "Locked while addresses are loaded",
    5: "Locked while addresses are copied into a campaign",
}

CONTACT_STATUS = {
    0: "New",
    1: "Active",
    2: "Activation requested",
    3: "Activation requested via the admin panel",
    4: "Unsubscribed",
    5: "Rejected by the service",
    6: "Unsubscribed from all mailings",
    7: "Activation letter sent",
    8: "Blocked by the client",
    9: "Undeliverable",
    10: "Blocked by host list",
    11: "Blocked by user name",
    12: "Blocked by address part",
    13: "Deleted by the client",
    14: "Temporarily unavailable",
}

CAMPAIGN_STATUS = {
    0: "New task",
    1: "Awaiting send (moderation)",
    2: "Sending",
    3: "Sent",
    4: "Test send",
    5: "Blocked by the service",
    6: "Marked for deletion",
    7: "Updating statuses",
    8: "Test sent",
    9: "Sending",
    10: "Preparing",
    11: "Awaiting the user's reply to a moderator",
    12: "No active addresses",
    13: "Being created",
    14: "Queued",
    15: "Awaiting the A/B result",
    16: "Cancelled by the user",
    26: "Draft",
}

RECIPIENT_STATUS = {
    0: "In queue",
    1: "Sent",
    2: "Delivered",
    3: "Opened",
    4: "Link redirected",
    5: "Unsubscribed",
    6: "Address does not exist",
    7: "Temporarily unavailable",
    8: "Unavailable",
    9: "Refused as spam by the server",
    10: "Mailbox full",
    11: "Marked as spam",
    12: "Failed",
    13: "Not sent",
    14: "Domain does not exist",
    15: "Unsubscribed",
    16: "Invalid email address",
    17: "Sending temporarily forbidden",
    18: "Disable by administrator",
}

# Recipient outcome -> the contact's status in the campaign's books.
ROW_EFFECT = {5: 4, 15: 4, 11: 6, 6: 9, 14: 9, 16: 9}

# Contact statuses a campaign mails.
MAILABLE = frozenset({1})
# Contact statuses that an unsubscribe can still act on.
SUBSCRIBED = frozenset({0, 1, 2, 3, 7})

WEBHOOK_ACTIONS = ("new_emails", "delete", "unsubscribe", "task_status_update", "open", "redirect", "spam")

# Units of a currency per US dollar (fixed sandbox rates for /balance/{currency}).
RATES = {
    "USD": "1",
    "EUR": "0.92",
    "GBP": "0.79",
    "RUR": "90",
    "UAH": "41",
    "KZT": "480",
    "PLN": "4",
    "TRY": "34",
    "BRL": "5.4",
}
CURRENCY_ALIASES = {"RUB": "RUR"}
