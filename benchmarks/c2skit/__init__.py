"""The C2S write-path benchmark's parts (``benchmarks/bench_c2s.py``).

- :mod:`.sink`: a loopback stand-in for the aggregator, in its own process: an actor document
  with an RSA key, an inbox answering 202 to every signed delivery (counted by type and time),
  and a signed ``Follow`` of the instance's Group so public acts are Announced to it;
- :mod:`.template`: one instance set up once through the ``barri`` CLI (residents with personal
  tokens, a process in its supports phase, proposals made over C2S) and copied for every run;
- :mod:`.load`: residents' clients POSTing Likes, Undos and comments to their outboxes with K
  requests in flight, each answer's latency recorded;
"""
