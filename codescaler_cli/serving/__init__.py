"""`codescaler serve`: the reward model behind a dynamically batched HTTP API.

- `config`: `ServeConfig`, everything the server needs (light to import)
- `batcher`: the queue and the worker thread that owns the scorer (shared by the server and `rl`'s in-process
  rewards)
- `protocol`, `service`, `app`, `metrics`, `server`: the HTTP server (FastAPI + uvicorn, imported lazily)
- `openai_protocol`, `best_of_n_service`, `sampler`: best-of-N behind OpenAI's chat/completions API, over a
  generator server (`--generator-url`) or an in-process engine (`-m`)
- `inputs`: what RL frameworks send (OpenRLHF queries, TRL prompts)

The RL reward functions that call this server (or run the same batcher in-process) are in `codescaler_cli.rl`.
"""
