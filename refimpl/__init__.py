"""longformer-lab's reference: Longformer (Beltagy, Peters, Cohan 2020) in readable NumPy, behind one backend seam.

    from refimpl import LongformerModel, LongformerTokenizer
    model = LongformerModel.from_pretrained("path/to/checkpoint", backend="numba")
"""

from refimpl.backends import asnumpy, available_backends, get_backend
from refimpl.config import LongformerConfig
from refimpl.model import (
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
    LongformerModel,
)


def __getattr__(name):
    # the tokenizer imports `tokenizers`; load it only when asked for
    if name == "LongformerTokenizer":
        from refimpl.tokenizer import LongformerTokenizer

        return LongformerTokenizer
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")


__all__ = [
    "LongformerConfig", "LongformerTokenizer", "LongformerModel", "LongformerForMaskedLM",
    "LongformerForSequenceClassification", "LongformerForTokenClassification", "LongformerForQuestionAnswering",
    "LongformerForMultipleChoice", "available_backends", "get_backend", "asnumpy",
]
