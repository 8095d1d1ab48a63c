"""kvplan: a capacity planner for LLM inference memory (KV cache sizing, batching, paging)."""

__version__ = "0.1.0"
