"""`codescaler serve` and RL reward functions: the reward model behind a dynamically batched HTTP API.

- `batcher`: the queue and the worker thread that owns the scorer (shared by the server and in-process rewards)
- `protocol`, `service`, `app`, `metrics`, `server`: the HTTP server (FastAPI + uvicorn, imported lazily)
- `openai_protocol`, `best_of_n_service`, `sampler`: best-of-N behind OpenAI's chat/completions API, over a
  generator server (`--generator-url`) or an in-process engine (`-m`)
- `rewards`: verl, TRL and OpenRLHF reward functions, against a server (`url=`) or a model in-process
- `inputs`, `upstream`: what RL frameworks send, and upstream training's extraction rule
"""
