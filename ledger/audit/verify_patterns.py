"""The patterns of the verifier's fast paths: the exact canonical bytes of the common transfer leaves.

Bytes these match are canonical by construction, so no re-encoding is needed; anything else takes
the general path (ledger.audit.jcs.parse_canonical), which accepts or reports it precisely.
tests/unit/test_verifier.py checks, over mutated leaves, that every path reports the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

__all__ = ["FAST_TRANSFER", "MAX_TIME", "POSTINGS", "line_pattern"]

# The exact canonical encoding of a transfer leaf whose strings are printable ASCII without '"' or
# '\' (every string JCS writes unescaped), whose units are known, whose times are non-negative and
# whose index and amounts have at most 15 digits (below 2**53 - 1, so no range check is needed).
_STR = rb'"[ !#-\[\]-~]*"'
_CSTR = rb'"([ !#-\[\]-~]*)"'
_NCSTR = rb'(?:null|"([ !#-\[\]-~]*)")'
_TIME = rb"(0|[1-9][0-9]{0,15})"
_UNIT = rb'"(?:service_minutes|points|coin_minutes|score_points)"'
_POSTING = rb"\[" + _STR + rb"," + _UNIT + rb",-?[1-9][0-9]{0,14}\]"
FAST_TRANSFER = re.compile(
    rb'\{"actor":(?:null|' + _STR + rb'),"effective_us":' + _TIME + rb',"id":' + _CSTR
    + rb',"idempotency_key":' + _STR + rb',"index":(0|[1-9][0-9]{0,14}),"kind":' + _STR
    + rb',"origin":' + _CSTR + rb',"pending_id":' + _NCSTR
    + rb',"phase":"(single|pending|post|void)","postings":\[(' + _POSTING + rb"(?:," + _POSTING
    + rb')*)\],"prev":"([0-9a-f]{64})","recorded_us":' + _TIME + rb',"reverses":' + _NCSTR
    + rb',"timeout_us":(?:null|' + _TIME + rb'),"type":"transfer","v":1\}'
).fullmatch  # fmt: skip
# The commonest leaf lines, matched whole in one step over a chunk's bytes (verify_leaves._scan
# checks the rest): {"index":n,"leaf":…} holding a transfer of two or four postings in balanced
# pairs (the second of each pair in the first's unit, the same digits, the other sign), under this
# log's origin, whose own index is the line's, with times below 9 * 10**15 (no range check needed).
# The signs and the phase combination are still compared in Python. A line this does not match, or
# matches but finds unbalanced, takes FAST_TRANSFER or the general path.
_PAIR_TIME = rb"(?:0|[1-9][0-9]{0,14}|[1-8][0-9]{15})"


def _balanced_pair(k: int) -> bytes:
    """Two postings: ("account","unit") sign digits, then ("account", same unit) sign, same digits."""
    return (
        rb'\[("[ !#-\[\]-~]*",(?P<unit%d>' % k + _UNIT + rb")),(-?)(?P<digits%d>[1-9][0-9]{0,14})\],"
        rb'\[("[ !#-\[\]-~]*",(?P=unit%d)),(-?)(?P=digits%d)\]' % (k, k, k)
    )


@functools.lru_cache(maxsize=8)
def line_pattern(origin: bytes) -> Callable[[bytes, int], re.Match[bytes] | None] | None:
    """The matcher of the commonest leaf lines of one log, applied at a position of a chunk's bytes
    (the match ends before the line's newline); None if the origin is not a plain JCS string.

    Groups: index, leaf, id, pending_id, phase, then per pair (account and unit, unit, sign,
    digits, account and unit, sign) twice (the second pair all None for two postings), prev,
    reverses, timeout_us.
    """
    if re.fullmatch(_STR, b'"' + origin + b'"') is None:
        return None
    return re.compile(
        rb'\{"index":(0|[1-9][0-9]{0,14}),"leaf":(\{"actor":(?:null|' + _STR + rb'),"effective_us":'
        + _PAIR_TIME + rb',"id":' + _CSTR + rb',"idempotency_key":' + _STR + rb',"index":\1,"kind":'
        + _STR + rb',"origin":"' + re.escape(origin) + rb'","pending_id":' + _NCSTR
        + rb',"phase":"(single|pending|post|void)","postings":\[' + _balanced_pair(1) + rb"(?:,"
        + _balanced_pair(2) + rb')?\],"prev":"([0-9a-f]{64})","recorded_us":' + _PAIR_TIME
        + rb',"reverses":' + _NCSTR + rb',"timeout_us":(null|' + _PAIR_TIME
        + rb'),"type":"transfer","v":1\})\}(?=\n|\Z)'
    ).match  # fmt: skip


# Over the postings FAST_TRANSFER matched: ('"account","unit"', unit, amount) of each.
POSTINGS = re.compile(rb'\[("[^"]*","([^"]*)"),(-?[0-9]+)\]').findall
MAX_TIME = b"9007199254740991"  # 2**53-1: 16-digit times above it are out of range
