"""Reward functions for RL trainers: verl (`compute_score`, `compute_score_batch`, `compute_score_async`), TRL
(`trl_reward`) and OpenRLHF (`reward_func`), each a client of a `codescaler serve` server (`url=`) or of a reward
model loaded in-process (behind the same batching queue the server uses). See `rewards`.
"""
