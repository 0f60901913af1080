"""The city simulation (issue 8): real ``barri serve`` processes on loopback, driven through
their real interfaces (CLI for setup, C2S outbox POSTs for residents, the admin pages for
official answers), checked exactly against a seeded generator's own model, and measured.

``python -m benchmarks.citysim --profile ci [--kill-aggregator] [--instance-down]
[--malicious]`` runs it; results go to ``benchmarks/results/citysim-<profile>.json``.
"""
