"""What the fuzz targets share: the active settings (`FUZZ`) and the input strategies."""

from hypothesis import settings
from hypothesis import strategies as st


def _active_settings() -> settings:
    """The profile named by `--hypothesis-profile`, or `fuzz` when none was (`default`)."""
    if settings.get_current_profile_name() == "default":
        return settings.get_profile("fuzz")
    return settings.default


# Evaluated when a test module is imported, i.e. after the plugin has loaded the profile.
FUZZ = settings(_active_settings())

# Characters that break naive text code: controls, zero-width, bidi marks, emoji modifiers,
# and the line separators that str.splitlines() splits on but files do not (\x85, U+2028).
TRICKY = st.sampled_from(
    ["\x00", "\u200b", "\u200d", "\u200e", "\u202e", "\ufeff", "\U0001f44d\U0001f3fd",
     "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
     "中文", "ไทย", ":)", "\r\n", "\t", "\ufffd", "e\u0301", "\x85", "\u2028", "\u2029",
     "\x0b", "\x1c", '"', ",", "[PAD]", "##"]
)
TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(TRICKY, st.text(max_size=5)), max_size=30).map("".join),
)
RAW_BYTES = st.binary(max_size=300)
# Empty and blank strings, which a tokenizer must pad rather than drop.
BLANK = st.sampled_from(["", " ", "\t\n", "\u3000", "\u200b"])
# Up to ~400 KB: a short fuzzed piece repeated (drawing it byte by byte is far too slow);
# the megabyte strings have their own tests, which a thousand examples would only repeat.
HUGE = st.builds(lambda piece, times: piece * times,
                 st.text(min_size=1, max_size=8), st.integers(1, 50_000))
# Nesting deep enough to exhaust a recursive parser (Python's limit is ~1,000 frames).
DEPTH = st.integers(1, 5_000)
# Integers with more digits than int(str) converts (4,300 by default) and than a float holds.
DIGITS = st.integers(1, 6_000)
