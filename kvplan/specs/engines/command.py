"""An engine's command line: which flag carries which setting, one table that writes the command
kvplan recommends (fit, plan) and reads a command back (check, a log's non-default args)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from kvplan.errors import InputError
from kvplan.specs.engines.deploy import Deploy, switched, term_values
from kvplan.specs.engines.fields import FIELD_ALIASES, FIELD_READERS


@dataclass(frozen=True)
class CommandLine:
    """How an engine's server starts, and which flag carries which setting: one table that both
    writes the command kvplan recommends and reads a command back (`kvplan check`)."""

    program: str  # what kvplan writes: 'vllm serve'
    launchers: tuple[tuple[str, ...], ...]  # every way people start it, as words
    model_flag: str | None  # None: the model is the first positional word
    flags: dict[str, str]  # setting -> the flag kvplan writes, in the order written
    also_read: dict[str, str] = field(default_factory=dict)  # other spellings read: flag -> setting
    kv_dtypes: dict[str, str] = field(default_factory=dict)  # kvplan's KV dtype -> the engine's value
    dtypes: dict[str, str] = field(default_factory=dict)  # kvplan's weights dtype -> the engine's --dtype value
    quantizations: dict[str, str] = field(default_factory=dict)  # formats it can cast to at load -> its value
    # Flags that take no value: setting -> {value: flag}, e.g. chunked_prefill -> {False: --no-enable-...}
    switches: dict[str, dict[bool | str, str]] = field(default_factory=dict)
    program_words: tuple[str, ...] = ()  # first words that mean "this engine" even when unparseable
    usage: str = ""  # how to write it, for the message when a line names the engine but no server

    def write(self, d: Deploy) -> str:
        """The command line, with pipeline parallelism and the KV dtype only where they differ from
        the engine's default (one stage, the model's dtype)."""
        values = {"revision": d.revision, "tp": d.tp, "pp": d.pp if d.pp > 1 else None, "max_model_len": d.max_len,
                  "util": f"{d.util:g}", "kv_dtype": self.kv_dtypes.get(d.kv_dtype), "max_num_seqs": d.max_num_seqs,
                  "weights_dtype": self.dtypes.get(d.dtype or ""),
                  "quantization": self.quantizations.get(d.quantization or ""),
                  "max_num_batched_tokens": d.max_num_batched_tokens, **term_values(d)}
        words = [*d.environment, self.program, *([self.model_flag] if self.model_flag else []), d.model]
        for setting, flag in self.flags.items():
            if values.get(setting) is not None:
                words.append(f"{flag} {shlex.quote(str(values[setting]))}")  # a JSON value, quoted
        words += [self.switches[name][value] for name, value in switched(d).items()
                  if value is not None and value in self.switches.get(name, {})]
        return " ".join(words)

    def read(self, command: str, engine: str, display: str) -> tuple[dict, list[str]]:
        """The settings a command line sets (check-file field names), and the flags kvplan ignores;
        `engine` and `display` name the engine in messages."""
        environment, words = self._words(command, engine, display)
        by_flag = {flag: setting for setting, flag in self.flags.items()} | self.also_read
        by_switch = {flag: (setting, value) for setting, flags in self.switches.items() for value, flag in flags.items()}
        if self.model_flag:
            by_flag[self.model_flag] = "model"
        fields: dict = {}
        ignored: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            flag, has_inline, inline = word.partition("=")
            if not word.startswith("-"):
                fields.setdefault("model", word)
            elif word in by_switch:
                setting, switch_value = by_switch[word]
                fields[setting] = switch_value
            elif flag in by_flag:
                value = inline if has_inline else (words[i + 1] if i + 1 < len(words) else "")
                i += 0 if has_inline else 1
                if not value:
                    raise InputError(f"{engine} flag {flag} has no value; give one, e.g. {flag} 4096")
                setting = by_flag[flag]
                read = FIELD_READERS[setting]
                got = read(value, f"{engine} flag {flag}")  # a JSON flag sets several (--speculative-config)
                fields.update(got if isinstance(got, dict) else {FIELD_ALIASES.get(setting, setting): got})
            else:
                ignored.append(flag)
                if not has_inline and i + 1 < len(words) and not words[i + 1].startswith("-"):
                    i += 1  # its value
            i += 1
        if environment:
            fields["environment"] = environment
        return fields, ignored

    def _words(self, command: str, engine: str, display: str) -> tuple[list[str], list[str]]:
        """(the leading VAR=value settings, the words after the launcher); shell continuations joined."""
        try:
            words = shlex.split(command.replace("\\\n", " "))
        except ValueError as err:  # an unbalanced quote: the scenario cannot be read, so it is an error
            raise InputError(f"cannot read the {engine} command line ({err}); balance its quotes") from None
        environment = []
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            environment.append(words.pop(0))
        if not words:
            raise InputError(f"the {engine} command line is empty; write {self.usage}")
        for launcher in self.launchers:
            if tuple(words[: len(launcher)]) == launcher:
                return environment, words[len(launcher):]
        if words and words[0] in self.program_words:
            raise InputError(f"'{' '.join(words[:3])}' is not a {display} server command; write {self.usage}")
        return environment, words
