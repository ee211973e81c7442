"""The demo model's caption side: a word-level tokenizer from a small local vocabulary and a
small transformer encoder whose per-token states feed the UNet's cross-attention (like CLIP's
last hidden state in Stable Diffusion)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Lower-cased alphanumeric words; unknown words map to <unk>. The empty caption is
    <bos><eos> followed by padding, the unconditional input for classifier-free guidance."""

    def __init__(self, vocab: Sequence[str], max_length: int = 16):
        if list(vocab[:4]) != [PAD, BOS, EOS, UNK]:
            raise ValueError(f"expected vocab to start with {[PAD, BOS, EOS, UNK]}, got {list(vocab[:4])}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length

    @classmethod
    def from_captions(cls, captions: Iterable[str], max_length: int = 16) -> "WordTokenizer":
        seen = sorted({w for c in captions for w in words(c)})
        return cls([PAD, BOS, EOS, UNK, *seen], max_length)

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(captions), self.max_length, dtype=torch.long)
        unk = self.index[UNK]
        for i, c in enumerate(captions):
            ids = [self.index[BOS]] + [self.index.get(w, unk) for w in words(c)][: self.max_length - 2]
            ids.append(self.index[EOS])
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class CaptionEncoder(nn.Module):
    """Token + position embeddings through a few pre-norm transformer layers."""

    def __init__(self, vocab_size: int, dim: int = 128, layers: int = 2, heads: int = 4, max_length: int = 16):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(1, max_length, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.tok(ids) + self.pos[:, : ids.shape[1]]))
