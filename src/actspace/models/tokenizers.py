"""Word-level tokenizers for models whose vocabulary is a fixed list of symbols.

Toy models (data tokens plus specials) and the small test models use one; a Hugging Face
fast tokenizer built on the ``tokenizers`` library, saved and loaded like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from actspace.data.tasks import COPY_TASK_SPECIALS


def word_level_tokenizer(
    words: Sequence[str],
    specials: Sequence[str] = ("<bos>", "<eos>", "<pad>", "<unk>"),
    bos: str = "<bos>",
    eos: str = "<eos>",
    pad: str = "<pad>",
    unk: str | None = "<unk>",
    add_bos: bool = True,
) -> PreTrainedTokenizerFast:
    """Whitespace-split tokenizer: ``words`` get ids 0..len-1, then ``specials`` in order.

    ``bos``, ``eos``, ``pad`` (and ``unk`` unless None) must be among ``specials``; with
    ``unk=None`` an unknown word is an error rather than a token. With ``add_bos`` every
    encoded text starts with ``bos`` (as a pretrained LM's would).
    """
    roles = [bos, eos, pad] + ([unk] if unk is not None else [])
    missing = [token for token in roles if token not in specials]
    if missing:
        raise ValueError(f"special tokens {missing} are not in specials {list(specials)}")
    vocab = {word: index for index, word in enumerate([*words, *specials])}
    if len(vocab) != len(words) + len(specials):
        raise ValueError("tokenizer words must be unique and distinct from the special tokens")
    backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, vocab[bos])]
        )
    others = [token for token in specials if token not in roles]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        additional_special_tokens=others,
    )


def copy_task_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    """The tokenizer of a copy-task toy (decompiling_transformers convention): data tokens
    "0".."V-1", then ``<bos> <sep> <eos> <pad>``; no unknown token."""
    return word_level_tokenizer(
        [str(i) for i in range(vocab)], specials=COPY_TASK_SPECIALS, unk=None, add_bos=True
    )
