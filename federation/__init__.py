"""ActivityPub: actors, signatures, inbox, outbox, delivery, fetching."""
