"""What the scoring and generation backends share: model loading and its errors (`loading`), vLLM engines started
and stopped the same way everywhere (`vllm`), and HTTP replicas with timeouts and retries (`http`).
"""
