"""The programs that run inside the sandbox for tests that are code or function calls: `candidate.py` (the
candidate's process: loads its program and answers calls), `judge.py` (runs the tests and decides verdicts, in a
sandbox of its own) and `wire.py` (the framing and the plain-value encoding between them). They are copied into the
sandbox and run under its interpreter: standard library only."""
