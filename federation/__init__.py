"""The deliberation domain of Barri: instance, aggregator, store, tally and CLI."""
