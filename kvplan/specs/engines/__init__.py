"""The serving engines kvplan plans for, one entry each: what the memory fraction means, the pool
and start-up rules, the batch defaults, and the command line (written by `fit`/`plan`, read back by
`check`). Each engine has release presets, oldest first (`--engine vllm==0.19`); the engine's name
alone takes its default preset. Nothing outside this package names an engine; adding an engine, or
a release of one, is a module (or a class) here and its tests.

`registry` holds the entries; this module only the two names every command needs at start-up, so
that importing them loads no entry (kvplan's start-up budget).
"""

from __future__ import annotations

DEFAULT_ENGINE = "vllm"  # the realistic default: what most deployments run (registry checks it exists)
TEXTBOOK_ENGINE = "raw"  # nothing but weights and KV: the course notes, and the probe's measured budget
