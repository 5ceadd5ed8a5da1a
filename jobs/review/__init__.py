"""The review loop: a queue of predictions worth a human look, decisions stored as labels, exchange formats.

:mod:`jobs.review.queue` is the API (queue, decide, undo, progress); :mod:`jobs.review.exchange`
writes and reads Label Studio, CSV and class-folder trees. Nothing happens at import.
"""
