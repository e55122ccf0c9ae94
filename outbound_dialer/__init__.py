"""The outbound dialer: feedback and follow-up calls within the day's budget (docs/dialer.md)."""
