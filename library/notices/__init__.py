"""Notices to readers: the outbox, the worker that sends it, and the reader's choice of what to receive.

Every domain that tells readers things (circulation, activities, self-service) writes its
messages here; none of them is known to this package. A domain defines its messages
(`messages.Message`), queues them with `outbox.queue`, and hands its periodic scans
(reminders, lapsing offers) to the worker as `worker.Step`s, wired in by the entry points
(library.app, library.cli).
"""
