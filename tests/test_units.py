import pytest

from kvplan.errors import InputError
from kvplan.units import GIB, fmt_binary, fmt_bytes, kv_format, parse_tokens


@pytest.mark.parametrize("text, tokens", [("4096", 4096), ("4k", 4096), ("128k", 131_072),
                                          ("1m", 1_048_576), ("1.5k", 1536), (" 32K ", 32_768)])
def test_parse_tokens_uses_binary_k(text, tokens):
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize("text", ["-5", "abc", "4g", "", "1.3k"])
def test_parse_tokens_rejects(text):
    with pytest.raises(InputError):
        parse_tokens(text)


def test_fmt_bytes_gives_exact_binary_and_decimal():
    # 1,342,177,280 B = 1.25 x 2^30 (GiB) = 1.342 x 10^9 (GB)
    assert fmt_bytes(1_342_177_280) == "1,342,177,280 B (1.25 GiB, 1.34 GB)"
    assert fmt_bytes(65_536) == "65,536 B (64 KiB, 65.54 kB)"
    assert fmt_bytes(512) == "512 B"
    assert fmt_binary(10 * GIB) == "10 GiB"


@pytest.mark.parametrize("name, elements, expected", [
    ("bf16", 2048, 4096),             # 2048 x 2 B
    ("fp32", 2048, 8192),             # 2048 x 4 B
    ("fp8", 2048, 2048),              # 2048 x 1 B, per-tensor scale: no per-token overhead
    ("int8", 2048, 2048 + 32 * 4),    # 2048 x 1 B + 2048/64 groups x 4 B (fp16 scale + zero)
    ("int4", 2048, 1024 + 32 * 4),    # 2048 x 0.5 B + 32 groups x 4 B
    ("int4", 576, 288 + 9 * 4),       # an MLA latent: 576 x 0.5 B + 9 groups x 4 B
])
def test_kv_format_bytes(name, elements, expected):
    assert kv_format(name).bytes_for(elements) == expected


def test_unknown_kv_format():
    with pytest.raises(InputError, match="unknown KV dtype 'fp6'"):
        kv_format("fp6")
