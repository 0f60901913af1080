"""The ActivityPub protocol core of Barri: signatures, proofs, JSON-LD, discovery, inbox, delivery.

This package knows nothing of deliberation; it never imports from ``federation``.
"""
