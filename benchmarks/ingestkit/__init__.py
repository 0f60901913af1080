"""The aggregator ingest benchmark's parts (``benchmarks/bench_ingest.py``).

- :mod:`.city`: a real city (``barri serve`` instances with verified residents, their processes
  and proposals, set up by :mod:`benchmarks.citysim.cluster`), the residents' keys read back from
  each instance's SQLite file;
- :mod:`.deliveries`: support ``Like``s proved and HTTP-signed with those real keys, built ahead
  of time in worker processes as raw HTTP/1.1 requests;
- :mod:`.blaster`: a separate process that POSTs them over K keep-alive connections;
- :mod:`.aggregator`: the aggregator process (optionally under cProfile), its CPU from /proc,
  and the wait until its API counts what was sent.
"""
