"""The README's "Using it" example runs as printed, on the embedded default model.

Would catch: a README that drifts from the API (a renamed keyword, a tokenizer that returns another type, a mask
token the default model does not have).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_using_it_example_runs():
    text = README.read_text(encoding="utf-8")
    code = re.search(r"## Using it.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the masked-LM head is new on this base checkpoint, and says so
        exec(compile(code, "README.md", "exec"), namespace)
    out, loss = namespace["out"], namespace["loss"]
    assert out.last_hidden_state.shape[:2] == namespace["enc"]["input_ids"].shape
    assert out.attentions[0].shape[-1] == 1 + namespace["model"].config.window(0) + 1
    assert float(loss) > 0
