"""AWS listener-rule wildcards as PCRE patterns, and strings quoted for haproxy.cfg.

AWS patterns know two wildcards: `*` (zero or more characters) and `?` (exactly one). Every
other character is literal. The regexes built here are anchored and written so that they
need no quoting in haproxy.cfg beyond single quotes: every character that is not a letter,
a digit or one of a few harmless ones becomes a PCRE `\\xHH` escape, so neither blanks,
quotes, `$`, `#` nor backslashes reach HAProxy's configuration parser.
"""

from __future__ import annotations

import re

# Characters written as themselves: no meaning to PCRE, nor to HAProxy's parser.
_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-~@:,=&%!<>")


def _literal(ch: str) -> str:
    if ch in _PLAIN:
        return ch
    return "".join(f"\\x{b:02x}" for b in ch.encode("utf-8"))


def wildcard_regex(pattern: str, many: str = ".*", one: str = ".", escapes: bool = False) -> str:
    """The body of a regex for an AWS pattern (no anchors): `*` -> many, `?` -> one.

    escapes: `\\*` and `\\?` stand for a literal * and ? (query-string values, as AWS has it).
    """
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escapes and ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?\\":
            out.append(_literal(pattern[i + 1]))
            i += 2
            continue
        out.append(many if ch == "*" else one if ch == "?" else _literal(ch))
        i += 1
    return "".join(out)


def anchored(pattern: str) -> str:
    """A whole-value regex for an AWS pattern (path, host, header value)."""
    return "^" + wildcard_regex(pattern) + "$"


def query_regex(key: str | None, value: str) -> str:
    """A regex over the raw query string that finds one key=value pair (or, without a key,
    any parameter with that value). Wildcards never cross a parameter's `&` (or, in a key,
    its `=`)."""
    key_re = r"[^&=]*" if key is None else wildcard_regex(key, r"[^&=]*", r"[^&=]", escapes=True)
    value_re = wildcard_regex(value, r"[^&]*", r"[^&]", escapes=True)
    return f"(?:^|&){key_re}={value_re}(?:&|$)"


def single_quoted(text: str) -> str:
    """A haproxy.cfg word in single quotes (no escapes are read inside them)."""
    if "'" in text or "\n" in text:
        raise ValueError(f"cannot single-quote {text!r}")
    return f"'{text}'"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def double_quoted(text: str, log_format: bool = False) -> str:
    """A haproxy.cfg word in double quotes that reads back as exactly `text`.

    HAProxy expands ${VAR} and reads backslash escapes inside double quotes; control
    characters and non-ASCII bytes are written as \\xHH. log_format: the word is a log-format
    string, where a literal % is written %%.
    """
    out = []
    for ch in text:
        if log_format and ch == "%":
            out.append("%%")
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
    return '"' + "".join(out) + '"'


_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def server_name(key: str) -> str:
    """A HAProxy server name for a target key ("WebA1:80" -> "WebA1_80")."""
    return _NAME.sub("_", key)
