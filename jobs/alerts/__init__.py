"""Alerts: what driftkeeper tells people when something changes (webhook, Slack, e-mail)."""
