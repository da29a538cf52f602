"""Hypothesis strategies shared by the property tests."""

from hypothesis import strategies as st

# st.text() leaves lone surrogates out, whatever its alphabet: join characters.
surrogates = st.characters(categories=["Cs"])
texts = st.text(max_size=12) | st.lists(st.characters() | surrogates, max_size=6).map(
    "".join
)
# Ints past 4,300 digits, which Python will not write as text.
huge_ints = st.integers(14_000, 20_000).map(lambda bits: 1 << bits)
# Values of every plain type the boundaries meet, hostile ones included; each
# property adds the containers and types that matter to it.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=True),
    texts,
    st.binary(max_size=4),
)
