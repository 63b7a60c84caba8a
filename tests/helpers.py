"""Small assertions shared by several test modules."""

import torch

from course_utils.pruning import get_masks


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """True when two models hold bit-identical state (parameters and buffers)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def zeros_stay_zero(model: torch.nn.Module) -> bool:
    """True when every weight a mask prunes is exactly zero."""
    params = dict(model.named_parameters())
    return all(bool((params[n][~m] == 0).all()) for n, m in get_masks(model).items())


def padded_batch(lengths=(7, 3, 5, 1), *, vocab: int = 30, seed: int = 0) -> tuple:
    """Random token ids in [1, vocab), zero-padded after each length: ``(tokens, lengths)``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(1, vocab, (len(lengths), int(lengths.max())), generator=g)
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    return tokens, lengths
