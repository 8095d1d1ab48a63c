"""vLLM's speculative decoding settings on a command line: `--speculative-config '{"method": "mtp",
"num_speculative_tokens": 3}'` (vllm/engine/arg_utils.py, a JSON object read into SpeculativeConfig,
vllm/config/speculative.py), and before it `--speculative-model NAME --num-speculative-tokens N`."""

from __future__ import annotations

import json

from kvplan import bounds
from kvplan.errors import InputError


def read_speculative_config(value: str, where: str) -> dict:
    """The check-file fields a --speculative-config JSON sets: speculative_method, draft_model (a
    separate draft model: method draft_model, or none given with a model), num_speculative_tokens."""
    try:
        config = json.loads(value)
    except json.JSONDecodeError as err:
        raise InputError(f"{where} is not JSON ({err.msg}); write it as '{{\"method\": \"mtp\", "
                         "\"num_speculative_tokens\": 3}'") from None
    if not isinstance(config, dict):
        raise InputError(f"{where} must be a JSON object, e.g. '{{\"model\": \"...\", \"num_speculative_tokens\": 5}}'")
    fields: dict = {}
    method = config.get("method") or ("draft_model" if config.get("model") else None)
    if method:
        fields["speculative_method"] = str(method)
    if method == "draft_model" and config.get("model"):
        fields["draft_model"] = str(config["model"])
    if config.get("num_speculative_tokens") is not None:
        fields["num_speculative_tokens"] = bounds.tokens_or_zero(str(config["num_speculative_tokens"]), where)
    return fields


# vLLM's flags -> the setting each reads into (the older two: vLLM V0's engine args)
SPECULATIVE_FLAGS = {"--speculative-config": "speculative_config", "--speculative-model": "draft_model",
                     "--num-speculative-tokens": "num_speculative_tokens"}
SPECULATIVE_READERS = {"speculative_config": read_speculative_config, "draft_model": lambda v, _: v,
                       "num_speculative_tokens": bounds.tokens_or_zero}
