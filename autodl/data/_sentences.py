"""``synthetic:text``: short positive / negative review sentences from word lists.

Each sentence carries one sentiment adjective from a list of 48 per class, so a random
validation split holds many adjectives the training split never showed: a model that
already knows English (a pretrained backbone) can tell them apart, one that learns from
these few hundred rows alone mostly cannot.
"""

from __future__ import annotations

import numpy as np

from autodl.data._split import RawData

__all__ = ["NEGATIVE", "NOUNS", "POSITIVE", "TEMPLATES", "sentiment_sentences"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


POSITIVE = _words(
    "good great excellent wonderful fantastic superb brilliant delightful lovely amazing "
    "outstanding terrific marvelous splendid enjoyable charming pleasant impressive "
    "beautiful stunning magnificent fabulous perfect touching uplifting heartwarming "
    "hilarious clever engaging gripping captivating inspiring moving memorable refreshing "
    "remarkable exceptional fun sweet warm funny thoughtful elegant joyful satisfying "
    "masterful powerful exciting"
)
NEGATIVE = _words(
    "bad terrible awful horrible dreadful poor boring dull tedious disappointing "
    "mediocre weak lame painful annoying irritating clumsy awkward bland forgettable "
    "pointless stupid silly messy sloppy shallow predictable lifeless tiresome "
    "unbearable unwatchable atrocious abysmal pathetic ugly cheap confusing frustrating "
    "depressing miserable worthless rotten dreary sluggish incoherent pretentious "
    "overlong unpleasant"
)
NOUNS = ("movie", "film", "story", "plot", "acting", "ending", "cast", "script",
          "soundtrack", "show", "book", "performance")
TEMPLATES = ("the {noun} was {adj}", "i found the {noun} {adj}", "what a {adj} {noun}",
              "honestly , the {noun} is {adj}", "a {adj} {noun} overall",
              "my friends said the {noun} felt {adj}", "{adj} , just {adj}",
              "the {noun} turned out {adj} in the end")


def sentiment_sentences(rng: np.random.Generator, n: int, max_length: int) -> RawData:
    """``n`` sentences, labels ``positive`` / ``negative`` alternating in random order;
    ``max_length`` is the token count they are tokenised to."""
    labels = rng.permutation(np.arange(n) % 2)
    texts = []
    for label in labels:
        words = POSITIVE if label else NEGATIVE
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        texts.append(template.format(noun=NOUNS[rng.integers(len(NOUNS))],
                                     adj=words[rng.integers(len(words))]))
    y = np.where(labels == 1, "positive", "negative")
    return RawData(X=np.array(texts, dtype=object), y=y, source="synthetic:text",
                   feature_names=["text"], modality="text", text={"max_length": max_length})
