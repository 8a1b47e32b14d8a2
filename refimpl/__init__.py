"""longformer-lab's reference: Longformer (Beltagy, Peters, Cohan 2020) in readable NumPy, behind one backend seam.

    from refimpl import LongformerModel, LongformerTokenizer
    model = LongformerModel.from_pretrained("path/to/checkpoint", backend="numba")

The paper: attention.py (the attention, passes 1-4), model.py (embeddings, layers, the encoder), heads.py (the five
task heads), with inputs.py, outputs.py, ops.py and config.py. The seams: backends/ (the interface, numpy, numba,
dense; cupy lives in gpu/). Files and formats: io/ (checkpoints, tokenizer, converter, default model).
"""

from refimpl.backends import asnumpy, available_backends, get_backend
from refimpl.config import LongformerConfig
from refimpl.heads import (
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
)
from refimpl.io.tokenizer import LongformerTokenizer
from refimpl.model import LongformerModel

__all__ = [
    "LongformerConfig", "LongformerTokenizer", "LongformerModel", "LongformerForMaskedLM",
    "LongformerForSequenceClassification", "LongformerForTokenClassification", "LongformerForQuestionAnswering",
    "LongformerForMultipleChoice", "available_backends", "get_backend", "asnumpy",
]
