"""A caption encoder that needs no download: hashed character n-grams per word, a bi-GRU over the words, and
a small image CNN trained with it on image-caption pairs (a DAMSM-like matching objective, Xu et al. 2018).

Why this encoder (and not word vectors from a package): emoji captions are CLDR names full of compounds and
proper nouns ("heart-shaped", "Antigua & Barbuda", "medium-dark skin tone") that a fixed word vocabulary
misses. A word here is the mean of the embeddings of its character n-grams (n = 3, 4, with '<' and '>' marking
its ends) and of the whole word, hashed into a fixed number of buckets (fastText, Bojanowski et al. 2017): an
unseen word still gets a vector from the n-grams it shares with seen ones ("flag Japan" -> "flag" + "jap",
"apa", "pan", ...), and no vocabulary is needed to build the network. Which words training did see is kept
by the family (its run state), so that a prompt's unseen words are named in a warning.

The sentence vector is the concatenation of the bi-GRU's last forward and backward states, projected
(AttnGAN's text encoder, Xu et al. 2018, sec. 3.3, with n-gram words in place of a word table). The matching
objective is DAMSM's sentence loss (eq. 10-11): softmax over cosine similarities scaled by gamma3 = 10, both
ways (image -> captions, caption -> images), with identical captions in a batch not counted as negatives.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import decode_text

MAX_WORDS = 16  # words of a caption read (the rest ignored; emoji names have at most 9)
MAX_GRAMS = 24  # n-gram ids per word (the whole word first, then its 3- and 4-grams)
GRAM_SIZES = (3, 4)
GAMMA3 = 10.0  # DAMSM's sentence-loss temperature (Xu et al. 2018, sec. 3.4: gamma3 = 10)
_DROP = re.compile(r"[()\[\]{},.:;\"“”]")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")


def words(caption: str) -> list[str]:
    """A caption's words as the encoder reads them: lower case, brackets and separators dropped, hyphenated
    compounds kept whole ("medium-dark"), symbols as words ("#", "&", "!")."""
    return _WORD.findall(_DROP.sub(" ", caption.lower()))[:MAX_WORDS]


@functools.lru_cache(maxsize=65536)
def _word_ids(word: str, buckets: int) -> tuple[int, ...]:
    """Bucket ids (1..buckets-1; 0 pads) of a word and its n-grams. crc32, not hash(): the same ids in every
    process (Python salts str hashes)."""
    marked = f"<{word}>"
    grams = [marked] + [marked[i : i + n] for n in GRAM_SIZES for i in range(len(marked) - n + 1)]
    return tuple(1 + zlib.crc32(g.encode("utf-8")) % (buckets - 1) for g in grams[:MAX_GRAMS])


def tokenize(
    captions: Sequence[str], buckets: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> n-gram ids int64 (B, MAX_WORDS, MAX_GRAMS) (0: padding) and word counts int64 (B,)."""
    ids = torch.zeros(len(captions), MAX_WORDS, MAX_GRAMS, dtype=torch.long)
    lengths = torch.zeros(len(captions), dtype=torch.long)
    for b, cap in enumerate(captions):
        ws = words(cap)
        lengths[b] = max(len(ws), 1)
        for w, word in enumerate(ws):
            g = _word_ids(word, buckets)
            ids[b, w, : len(g)] = torch.tensor(g)
    return ids.to(device), lengths


def unseen_words(caption: str, vocabulary: Iterable[str]) -> list[str]:
    """The words of `caption` that are not in `vocabulary` (in order, once each)."""
    vocab = set(vocabulary)
    out: list[str] = []
    for w in words(caption):
        if w not in vocab and w not in out:
            out.append(w)
    return out


class TextEncoder(nn.Module):
    """Captions (uint8 (B, TEXT_BYTES) bytes, `spec.encode_text`) -> sentence vectors float (B, dim)."""

    def __init__(self, dim: int, buckets: int = 4096, word_dim: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.buckets, self.dim = buckets, dim
        self.grams = nn.Embedding(buckets, word_dim, padding_idx=0)
        self.rnn = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)
        nn.init.normal_(self.grams.weight, std=0.1)
        with torch.no_grad():
            self.grams.weight[0].zero_()

    def word_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """n-gram ids (B, W, K) -> word vectors (B, W, word_dim): the mean of each word's n-gram embeddings."""
        mask = (ids != 0).unsqueeze(-1).float()  # (B, W, K, 1)
        return (self.grams(ids) * mask).sum(2) / mask.sum(2).clamp(min=1)

    def encode_ids(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        vecs = self.word_vectors(ids)  # (B, W, word_dim)
        packed = nn.utils.rnn.pack_padded_sequence(vecs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)  # h: (2, B, hidden): last forward and backward states
        return self.proj(torch.cat([h[0], h[1]], 1))  # (B, dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        ids, lengths = tokenize(decode_text(text), self.buckets, text.device)
        return self.encode_ids(ids, lengths)


class ImageEncoder(nn.Module):
    """Images in [-1, 1] (B, C, R, R) -> vectors (B, dim): stride-2 convolutions down to 4x4, mean-pooled.
    DAMSM's image side is an ImageNet Inception-v3; a small CNN trained from scratch stands in for it here."""

    def __init__(self, channels: int, resolution: int, dim: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, r = channels, resolution
        out = width
        while r > 4:
            layers += [nn.Conv2d(c, out, 3, 2, 1), nn.LeakyReLU(0.2)]
            c, r, out = out, r // 2, min(out * 2, 8 * width)
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(c, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x).mean((2, 3)))


def matching_logits(img: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
    """Scaled cosine similarities (B_img, B_text): DAMSM's R(Q, D) times gamma3."""
    return GAMMA3 * F.normalize(img, dim=1) @ F.normalize(sent, dim=1).t()


def matching_loss(img: torch.Tensor, sent: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """DAMSM sentence loss L1^s + L2^s (Xu et al. 2018, eq. 10-11) over a batch of matching pairs; pairs whose
    captions are identical (uint8 `text` rows equal) are not negatives of each other."""
    logits = matching_logits(img, sent)  # (B, B)
    same = (text.unsqueeze(1) == text.unsqueeze(0)).all(-1)  # (B, B)
    eye = torch.eye(len(text), dtype=torch.bool, device=text.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(text), device=text.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)


class Matcher(nn.Module):
    """An image-text matching model (text + image encoder), trained with `matching_loss`: the dfgan family's
    pretraining, and the benchmark's R-precision judge (a separate instance trained on the training split)."""

    def __init__(self, channels: int, resolution: int, dim: int = 64, buckets: int = 4096) -> None:
        super().__init__()
        self.text = TextEncoder(dim, buckets)
        self.image = ImageEncoder(channels, resolution, dim)

    def loss(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return matching_loss(self.image(images), self.text(text), text)


def train_matcher(
    images: torch.Tensor,
    text: torch.Tensor,
    *,
    steps: int,
    batch: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    dim: int = 64,
) -> Matcher:
    """A `Matcher` trained on images in [-1, 1] (N, C, R, R) and their captions uint8 (N, TEXT_BYTES), on the CPU."""
    torch.manual_seed(seed)
    m = Matcher(images.shape[1], images.shape[-1], dim)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (min(batch, len(images)),), generator=g)
        loss = m.loss(images[idx], text[idx])  # no flips: they would swap "left" and "right" arrows
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return m.eval().requires_grad_(False)
