"""This process's served deployments: each loaded once, in the mode it serves with, behind a dynamic
batcher. An admin edit (mode, batch size, SLO) reaches the next request: the key includes updated_at."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from apps.inference.backends import (
    LoadSpec,
    ModelUnavailable,
    base_models_release,
    load,
    model_location,
    resolve_device,
    unavailable_reason,
)
from apps.inference.batcher import BatchController, CallerGone, DynamicBatcher, EventLoopThread
from apps.inference.models import ModelDeployment

logger = logging.getLogger(__name__)
bridge = EventLoopThread()
# Guards _served and _loads for a dictionary operation, never held while a model loads: a load holds its
# deployment's own lock (see _load_lock), so requests to loaded models never wait on another model's load.
_lock = threading.Lock()
_served: dict[int, Served] = {}
_loads: dict[int, threading.Lock] = {}
_loading_weights: dict[int, tuple] = {}  # deployment -> weights being loaded (kept by base_models_release)


def _load_lock(deployment_pk: int) -> threading.Lock:
    with _lock:
        return _loads.setdefault(deployment_pk, threading.Lock())


def _load_lock_acquire(deployment_pk: int, *, blocking: bool) -> threading.Lock | None:
    """The deployment's load lock, acquired (None where `blocking` is false and another holds it). served_prune
    drops the lock of a deployment gone, when no one holds it: a call that took it from _loads before that and
    acquired it after holds a lock no longer registered, beside a call holding the new one. It takes the
    registered one instead, so that one load at a time holds on."""
    while True:
        lock = _load_lock(deployment_pk)
        if not lock.acquire(blocking=blocking):
            return None
        with _lock:
            if _loads.get(deployment_pk) is lock:
                return lock
        lock.release()


@dataclass
class Served:
    key: tuple
    spec: LoadSpec
    runner: object
    batcher: DynamicBatcher
    mode: str
    weights: str = ""  # a digest of the weights' files as loaded (see weights_fingerprint)

    @property
    def answer_key(self) -> list[str]:
        """What an answer depends on, for the ai_inference cache: the model as loaded (the files of its
        weights), the mode and the device. Keyed by the deployment's name and mode alone, a deployment moved
        to a new model version (another folder, or new files in its folder) answered from the cache with the
        old model's vectors and texts for the namespace's TTL: embeddings of two models side by side, which
        do not compare. The input cap too: an answer kept under a higher cap is not one to give past a lower
        one (see answer_key_unloaded, which must make the same key without loading the model)."""
        return _answer_key(self.mode, self.runner.device, self.weights, self.spec)


def _answer_key(mode: str, device: str, weights: str, spec: LoadSpec) -> list[str]:
    return [mode, device, weights, str(spec.max_input_tokens)]


def answer_key_unloaded(deployment: ModelDeployment) -> list[str] | None:
    """The deployment's answer_key without loading its model: the served one's where this process serves it,
    else the key the model this host would load gets (its mode, device, weights' files and input cap), None
    where that cannot be told (no such path, no such device: the load says why) or the row was edited since
    its model was loaded here. A cached answer was served only once the model was loaded, 15 to 20 s after a
    restart in each server process, when nothing of the answer needed it. A load may still come out otherwise
    (a model kept after a failed edit, a device torch resolves otherwise): its answer_key then differs, and the
    caller keys its answer by that one."""
    key = (deployment.pk, deployment.updated_at, deployment.serving_quantization)
    current = _served.get(deployment.pk)
    if current is not None:  # an edit since it was loaded is for served() to take in (retune, reload, fail)
        return current.answer_key if current.key == key or current.key[1] > key[1] else None
    spec = LoadSpec.of(deployment)
    try:
        device = _device_without_loading_torch(spec.device)
        mode, _ = mode_here(deployment, spec, device_of=_device_without_loading_torch)
        return _answer_key(mode, device, weights_fingerprint(spec), spec)
    except (ModelUnavailable, OSError):
        return None


class TokenMeter:
    """Generated tokens per second of each deployment, written as its `inference.tokens_per_s.<deployment>`
    series every 10 s at most. Per deployment: the dashboard shows a viewer only the deployments of the services
    they see (one figure of every deployment together showed a hidden service's traffic)."""

    def __init__(self, interval: float = 10.0):
        self.interval, self.tallies = interval, {}  # deployment: [tokens, seconds, since]
        self.lock = threading.Lock()

    def add(self, tokens: int, seconds: float, deployment: str = "") -> None:
        with self.lock:
            tally = self.tallies.setdefault(deployment, [0, 0.0, time.monotonic()])
            tally[0] += tokens
            tally[1] += seconds
            if time.monotonic() - tally[2] < self.interval or not tally[1]:
                return
            rate = tally[0] / tally[1]
            self.tallies[deployment] = [0, 0.0, time.monotonic()]
        from django.db import connection

        from apps.metrics.services import metric_points_record

        series = f"inference.tokens_per_s.{deployment}" if deployment else "inference.tokens_per_s"
        try:
            metric_points_record(values={series: round(rate, 3)})
        except Exception:  # runs inside a batch: a lost figure must not cost its callers' answers
            logger.warning("the inference.tokens_per_s figure could not be recorded", exc_info=True)
        finally:
            connection.close()  # a batcher thread, not a request's: hold no connection between batches


token_meter = TokenMeter()


# How long a deployment's failed load is remembered: meanwhile its calls answer 503 at once. Without it each
# call loaded again (seconds of a request thread, and the memory of a half-built model) for the same failure.
# An edit of the deployment (a new updated_at) is tried at once.
LOAD_FAILURE_SECONDS = 30.0


@dataclass
class LoadFailure:
    """Why the deployment's model, as the row with `key` describes it, could not be loaded here."""

    key: tuple
    reason: str
    at: float


_failures: dict[int, LoadFailure] = {}


def load_failure(deployment: ModelDeployment) -> str | None:
    """The reason of the deployment's last failed load in this process, while it is remembered."""
    failure = _failures.get(deployment.pk)
    if failure is None or time.monotonic() - failure.at >= LOAD_FAILURE_SECONDS:
        return None
    return failure.reason


def _remembered_failure(pk: int, key: tuple) -> LoadFailure | None:
    failure = _failures.get(pk)
    if failure is None or time.monotonic() - failure.at >= LOAD_FAILURE_SECONDS:
        return None
    return failure if failure.key == key or failure.key[1] > key[1] else None


def served(deployment: ModelDeployment) -> Served:
    """The deployment as this process serves it, loaded on first use.

    An edit that changes only how it is batched (batch size, queue delay, SLO; also a measurement, which
    touches the row) keeps the loaded model and its queue and gives the controller its new bounds: each
    such edit used to load the model again (a copy of its weights for bf16) in the request thread that saw
    it first. A row read before an edit that is already served does not take the deployment back.

    Whatever stops a load (a missing package, unreadable weights, no memory, a mode this host cannot run)
    is remembered for LOAD_FAILURE_SECONDS and recorded on the row (load_failure). Where this process
    already serves a model of the deployment for the same task (the fp32 one an admin edited to int8), that
    model goes on answering, under its own mode, and the edit is tried again after LOAD_FAILURE_SECONDS while
    it answers; with none, the failure is raised as ModelUnavailable, a 503 rather than a 500."""
    key = (deployment.pk, deployment.updated_at, deployment.serving_quantization)
    current = _served.get(deployment.pk)
    if current is not None and (current.key == key or current.key[1] > key[1]):
        return current
    if failure := _remembered_failure(deployment.pk, key):
        return _kept_or_raise(current, deployment, failure)
    # One load per deployment at a time; others load beside it. Trying again an edit that failed: the model kept
    # meanwhile answers, rather than each call waiting on it.
    lock = _load_lock_acquire(deployment.pk, blocking=not _retrying(current, deployment, key))
    if lock is None:
        return current
    try:
        current = _served.get(deployment.pk)
        if current is not None and (current.key == key or current.key[1] > key[1]):
            return current
        if failure := _remembered_failure(deployment.pk, key):  # the load this call waited for failed
            return _kept_or_raise(current, deployment, failure)
        return _load_in_lock(deployment, key, current)
    finally:
        lock.release()


def _load_in_lock(deployment: ModelDeployment, key: tuple, current: Served | None) -> Served:
    spec = LoadSpec.of(deployment)
    mode = _mode_here(deployment, spec)
    bounds = {"slo_ms": deployment.slo_p95_ms, "max_batch_size": deployment.max_batch_size,
              "max_delay_ms": deployment.max_queue_delay_ms}  # fmt: skip
    if current is not None and (current.spec, current.mode) == (spec, mode):
        current.batcher.controller.retune(**bounds)
        current.key = key
        _load_succeeded(deployment)  # an edit back to the mode that serves ends a failure of the one between
        return current
    with _lock:
        _loading_weights[deployment.pk] = spec.weights
    try:
        loaded = _loaded(deployment, key, spec, mode, bounds)
    except Exception as error:
        reason = str(error) if isinstance(error, ModelUnavailable) else f"{type(error).__name__}: {error}"
        reason = f"{mode} did not load: {reason}"
        kept = current if _keepable(current, deployment) else None
        after = f"; still serving the {kept.mode} model loaded before" if kept else ""
        logger.warning("deployment %s could not be loaded: %s%s", deployment.name, reason, after,
                       exc_info=not isinstance(error, ModelUnavailable))  # fmt: skip
        with _lock:
            _failures[deployment.pk] = LoadFailure(key, reason, time.monotonic())
        _load_failure_record(deployment, reason, kept)
        _load_failure_count(deployment, mode)
        if kept is not None:
            return kept
        raise ModelUnavailable(reason) from error
    finally:
        with _lock:
            _loading_weights.pop(deployment.pk, None)
    with _lock:
        replaced = _served.get(deployment.pk)
        _served[deployment.pk] = loaded
        keep = _weights_in_use()
    _load_succeeded(deployment)
    if replaced is not None:
        replaced.batcher.close()  # its queued calls are answered by the old model, then its task ends
        if replaced.spec.weights != spec.weights:
            base_models_release(keep=keep)
    return loaded


def _keepable(current: Served | None, deployment: ModelDeployment) -> bool:
    """Whether the model this process serves may go on answering for the deployment as its row now is: a
    model of the other task (the row's task edited) would fail every call of its new endpoint."""
    return current is not None and current.spec.task == deployment.task


def _kept_or_raise(current: Served | None, deployment: ModelDeployment, failure: LoadFailure) -> Served:
    if _keepable(current, deployment):
        return current
    raise ModelUnavailable(failure.reason)


def _retrying(current: Served | None, deployment: ModelDeployment, key: tuple) -> bool:
    """This row's load failed here before (its time is over) and a model is kept meanwhile."""
    failure = _failures.get(deployment.pk)
    return failure is not None and failure.key == key and _keepable(current, deployment)


def _load_failure_record(deployment: ModelDeployment, reason: str, kept: Served | None) -> None:
    """The failure on the row, for the admin and the dashboard (no input of any call is in it). A queryset
    update: updated_at, which this process's served models are keyed by, is left as it is."""
    where = f"on {socket.gethostname()} (process {os.getpid()})"
    after = f"still serving the {kept.mode} model loaded before" if kept else "answering 503 deployment_unavailable"
    text = f"{reason} {where}; {after}"
    try:
        with transaction.atomic():
            ModelDeployment.objects.filter(pk=deployment.pk).update(load_failure=text, load_failed_at=timezone.now())
    except DatabaseError:  # the failure is in the log all the same; serving goes on
        logger.warning("the load failure of deployment %s could not be recorded", deployment.name, exc_info=True)
        return
    deployment.load_failure = text


def _load_failure_count(deployment: ModelDeployment, mode: str) -> None:
    """The failure as a metric (Prometheus counter, `inference.load_failures.*` series): each failed load, where
    the row keeps the last one only. A metrics failure must not change what the call answers."""
    from apps.metrics.services import inference_load_failure_record

    try:
        with transaction.atomic():
            inference_load_failure_record(deployment=deployment.name, mode=mode)
    except Exception:
        logger.warning("the load failure of deployment %s could not be counted", deployment.name, exc_info=True)


def _load_succeeded(deployment: ModelDeployment) -> None:
    """The failure remembered for the deployment is over, here and on its row."""
    with _lock:
        _failures.pop(deployment.pk, None)
    if not deployment.load_failure:
        return
    try:
        ModelDeployment.objects.filter(pk=deployment.pk).update(load_failure="", load_failed_at=None)
    except DatabaseError:
        logger.warning("the load failure of deployment %s could not be cleared", deployment.name, exc_info=True)
        return
    deployment.load_failure, deployment.load_failed_at = "", None


def mode_here(
    deployment: ModelDeployment, spec: LoadSpec | None = None, device_of: Callable[[str], str] = resolve_device
) -> tuple[str, str | None]:
    """The mode this host loads the deployment in, and why, when that is not the mode its row asks for:
    `auto` serves its measured mode where that can run here, fp32 where it cannot (measured on a GPU pod,
    served on a CPU one: every call was a 503). A mode the admin chose is loaded as chosen, and fails as
    itself."""
    mode = deployment.serving_quantization
    if deployment.quantization != ModelDeployment.Quantization.AUTO or mode == ModelDeployment.Quantization.FP32:
        return mode, None
    try:
        reason = unavailable_reason(mode, device_of((spec or LoadSpec.of(deployment)).device))
    except ModelUnavailable:  # no device for any mode: the load says so
        return mode, None
    if reason is None:
        return mode, None
    return ModelDeployment.Quantization.FP32, f"its measured {mode} cannot run here ({reason})"


def _mode_here(deployment: ModelDeployment, spec: LoadSpec) -> str:
    mode, reason = mode_here(deployment, spec)
    if reason is not None:
        logger.info("deployment %s: %s; serving fp32", deployment.name, reason)
    return mode


def serving_here(deployment: ModelDeployment) -> tuple[str, str | None]:
    """The mode the deployment's calls are answered in by this process, and why, when that is not the mode
    its row asks for (the admin's choice, else the measured one): the model it holds (also one kept after an
    edit failed to load), else the mode this host would load. Without it the dashboard showed the measured
    nf4 of a deployment that answered in fp32 on a CPU host."""
    key = (deployment.pk, deployment.updated_at, deployment.serving_quantization)
    current = _served.get(deployment.pk)
    failure = _failures.get(deployment.pk)
    kept = failure is not None and failure.key == key and _keepable(current, deployment) and current.key != key
    if kept:
        return current.mode, f"{failure.reason}; the {current.mode} model loaded before answers"
    if current is not None and (current.key == key or current.key[1] > key[1]):
        _, reason = mode_here(deployment, current.spec)
        return current.mode, reason if current.mode != deployment.serving_quantization else None
    return mode_here(deployment, device_of=_device_without_loading_torch)


# Where the NVIDIA driver lists the GPUs it drives (Linux): present whenever torch.cuda.is_available() can be.
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def _device_without_loading_torch(requested: str) -> str:
    """The device a load would resolve, for a process that serves no model of the deployment (admin's and the
    dashboard's reads): importing torch there to label a row cost 1.25 s and 160 MB. Once torch is loaded
    (this process serves a model) it decides; until then the driver's GPU list stands in for
    torch.cuda.is_available()."""
    if requested == "cpu":
        return "cpu"
    if "torch" in sys.modules:
        return resolve_device(requested)
    has_gpu = NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    if requested == "cuda" and not has_gpu:
        raise ModelUnavailable("CUDA was asked for and no CUDA device is present")
    return "cuda" if has_gpu else "cpu"


def _loaded(deployment: ModelDeployment, key: tuple, spec: LoadSpec, mode: str, bounds: dict) -> Served:
    runner = load(spec, mode)
    controller = BatchController(**bounds)
    if deployment.task == ModelDeployment.Task.EMBEDDING:
        batcher = DynamicBatcher(runner.embed, controller, length=len)
    else:
        batcher = DynamicBatcher(_generate_batch(runner, deployment.name), controller, length=lambda item: len(item[0]),
                                 group=new_tokens_bucket, stoppable=True)  # fmt: skip
    return Served(key, spec, runner, batcher, mode, weights_fingerprint(spec))


def _weights_in_use() -> set[tuple]:
    """The weights of every served deployment and of every load in progress (under _lock)."""
    return {served.spec.weights for served in _served.values()} | set(_loading_weights.values())


# How often a serving process looks for the deployments it holds that were disabled or deleted since.
PRUNE_SECONDS = 60.0
_pruned_at = [time.monotonic()]


def served_prune_if_due() -> None:
    """served_prune at most once every PRUNE_SECONDS: called by the inference views, in a request's thread
    (whose database connection the request closes)."""
    if time.monotonic() - _pruned_at[0] >= PRUNE_SECONDS:
        served_prune()


def served_prune() -> list[int]:
    """Forget the deployments this process serves that are no longer enabled (disabled or deleted in admin):
    their batchers answer what is queued and stop, and weights no served deployment uses are released.
    Without it a disabled model kept its memory (~540 MB for SmolLM2 in a worker) until the process ended:
    nothing calls a disabled deployment again, so nothing else noticed. Their remembered load failures and
    load locks go too (a lock only while no call holds it, see _load_lock_acquire): kept by deployment for
    good, every deployment deleted or replaced left two entries in every server process. The served ones'
    pks are returned."""
    _pruned_at[0] = time.monotonic()
    with _lock:
        held = set(_served) | set(_failures) | set(_loads)
    if not held:
        return []
    try:
        enabled = set(ModelDeployment.objects.filter(pk__in=held, enabled=True).values_list("pk", flat=True))
    except DatabaseError:  # a housekeeping look: the call that ran it is served all the same
        logger.warning("could not look for disabled model deployments", exc_info=True)
        return []
    with _lock:  # held for the dictionary only: a model loading holds its deployment's lock, not this one
        gone = [pk for pk in sorted(held - enabled) if pk in _served]
        closing = [_served.pop(pk) for pk in gone]
        for pk in held - enabled:
            _failures.pop(pk, None)
            if pk in _loads and not _loads[pk].locked():
                del _loads[pk]
        keep = _weights_in_use()
    for served_model in closing:
        served_model.batcher.close()
    if gone:
        base_models_release(keep=keep)
    return gone


def weights_fingerprint(spec: LoadSpec) -> str:
    """A digest of the weights' files (name, size, modification time): new files in the same folder are
    another model as much as another folder is."""
    folder, gguf = model_location(spec)
    files = [folder / gguf] if gguf else sorted(path for path in folder.iterdir() if path.is_file())
    digest = hashlib.sha256(str(spec.weights).encode())
    for path in files:
        with contextlib.suppress(OSError):
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:32]


class Preload:
    """Loads the enabled deployments when a server process starts (INFERENCE_PRELOAD), in a thread of its
    own, so that the first call does not wait for its model (about 20 s for SmolLM2 here). /readyz shows
    where it is; a deployment that fails to load is logged and left to load (and fail) on its first call.

    Each gunicorn worker loads its own copy, and any of them may take the next request, so each also
    writes its state to a file beside its siblings' (`server_preload` reads them all): a pod is ready
    when every worker is, not when the one answering the probe is.
    """

    def __init__(self) -> None:
        self.state, self.detail = "off", "models load on their first call (INFERENCE_PRELOAD is off)"
        self.thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        self._set("loading", "starting")
        self.thread = threading.Thread(target=self._run, name="inference-preload", daemon=True)
        self.thread.start()
        return self.thread

    def _set(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail
        path = preload_state_path(os.getpid())
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = path.with_suffix(".tmp")
            written.write_text(json.dumps({"state": state, "detail": detail}))
            written.replace(path)
        except OSError:
            logger.warning("could not write the preload state of this worker", exc_info=True)

    def _run(self) -> None:
        from django.db import connection

        started, loaded, failed = time.monotonic(), [], []
        try:
            deployments = list(ModelDeployment.objects.filter(enabled=True).order_by("name"))
            for number, deployment in enumerate(deployments, 1):
                self._set("loading", f"loading {deployment.name} ({number} of {len(deployments)})")
                try:
                    served(deployment)
                    loaded.append(deployment.name)
                except Exception:
                    logger.warning("preloading deployment %s failed", deployment.name, exc_info=True)
                    failed.append(deployment.name)
        except Exception:
            logger.warning("preloading the inference deployments failed", exc_info=True)
            failed.append("(the deployment list)")
        finally:
            connection.close()  # this thread's own connection: it ends here
        seconds = time.monotonic() - started
        detail = f"loaded {', '.join(loaded) or 'none'} in {seconds:.1f} s"
        if failed:
            detail += f"; failed: {', '.join(failed)} (see the log)"
        self._set("failed" if failed else "ready", detail)


def preload_state_path(pid: int, *, parent: int | None = None) -> Path:
    """Where worker `pid` of server `parent` (default: this process's parent) keeps its preload state."""
    return _preload_dir() / f"{os.getppid() if parent is None else parent}-{pid}.json"


def _preload_dir() -> Path:
    return Path(settings.VAR_DIR) / "preload"


def server_preload() -> tuple[str, str]:
    """The preload of this process and of its live siblings (the other workers of its server): loading
    while any is loading, failed if any failed, else this process's own state."""
    states = [(os.getpid(), preload.state, preload.detail)]
    for path in _preload_dir().glob(f"{os.getppid()}-*.json"):
        pid_text = path.stem.rpartition("-")[2]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or not _alive(int(pid_text)):
            continue
        pid = int(pid_text)
        with contextlib.suppress(OSError, ValueError):
            sibling = json.loads(path.read_text())
            states.append((pid, str(sibling.get("state")), str(sibling.get("detail"))))
    for worst in ("loading", "failed"):
        matching = [(pid, detail) for pid, state, detail in states if state == worst]
        if matching:
            pid, detail = matching[0]
            return worst, f"{len(matching)} of {len(states)} workers {worst}; worker {pid}: {detail}"
    return preload.state, preload.detail if len(states) == 1 else f"{len(states)} workers: {preload.detail}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists (another user's still does)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


preload = Preload()


def new_tokens_bucket(item: tuple[str, int]) -> int:
    """The batch group of a generation request: its max_new_tokens rounded up to a power of two (1, 2, 3-4,
    5-8, ..., 33-64, ...), so a batch runs at most twice as long as its shortest request asked for."""
    return max(item[1] - 1, 0).bit_length()


def _generate_batch(runner, deployment: str = ""):
    def run(items: list[tuple[str, int]], abandoned: threading.Event | None = None) -> list[dict]:
        started = time.perf_counter()
        results = runner.generate([prompt for prompt, _ in items], [limit for _, limit in items], stop=abandoned)
        token_meter.add(sum(r["output_tokens"] for r in results), time.perf_counter() - started, deployment)
        return results

    return run


# How long a call waits for its answer (queue and run) before it gives up: InferenceTimeout.
EMBED_TIMEOUT_SECONDS = 120.0
GENERATE_TIMEOUT_SECONDS = 300.0


class InferenceTimeout(Exception):
    """The answer did not come in time (the batcher is far behind); nothing of the call is computed after."""


class InferenceFailed(Exception):
    """The model raised on this call's input (the batcher narrowed the failure down to it)."""


def _answer(coroutine, timeout: float, gone: Callable[[], bool] | None = None):
    try:
        return bridge.call(coroutine, timeout, gone=gone)
    except TimeoutError as error:
        raise InferenceTimeout(f"no answer within {timeout:g} s") from error
    except CallerGone:
        raise
    except Exception as error:  # the model's own error: a 503 for the caller, not a 500 with its traceback
        raise InferenceFailed(f"{type(error).__name__}: {error}") from error


def embed(deployment: ModelDeployment, texts: list[str], timeout: float | None = None, *,
          via: Served | None = None) -> tuple[list[list[float]], str]:  # fmt: skip
    """Each text goes through the batcher on its own, so one caller's inputs share batches with others'.
    `via`: the served model to use (the one a cache key was made from), else the deployment's current one.
    EmbeddingsFull when EMBED_QUEUE_BATCHES full batches of texts are already waiting or running here."""
    with queue_slot(embedding_slots, deployment, EMBED_QUEUE_BATCHES, count=len(texts)):
        current = via or served(deployment)

        async def gather():
            return await asyncio.gather(*(current.batcher.submit(text) for text in texts))

        return _answer(gather(), timeout or EMBED_TIMEOUT_SECONDS), current.mode


def generate(
    deployment: ModelDeployment, prompt: str, max_new_tokens: int, timeout: float | None = None, *,
    via: Served | None = None, gone: Callable[[], bool] | None = None,
) -> tuple[dict, str]:  # fmt: skip
    """A generation through the deployment's batcher; SlotsFull when GENERATION_QUEUE_BATCHES full batches
    of its generations are already waiting or running in this process. `gone` (client_gone_probe): CallerGone
    once the client has left, the generation cancelled (its batch stops at its next token if no one is left)."""
    with queue_slot(generation_slots, deployment, GENERATION_QUEUE_BATCHES):
        current = via or served(deployment)
        submitted = current.batcher.submit((prompt, max_new_tokens))
        return _answer(submitted, timeout or GENERATE_TIMEOUT_SECONDS, gone), current.mode


def client_gone_probe(environ: dict) -> Callable[[], bool] | None:
    """Whether the client of this WSGI request has left, told by a non-blocking peek at its socket, which
    gunicorn puts in the environ (`gunicorn.socket`): an end of stream or a reset is a client gone, data or
    nothing yet is one still there. None where the server gives no socket (the ASGI process, the test client):
    such a call stops at its timeout. A TLS socket cannot be peeked at: never told gone."""
    sock = environ.get("gunicorn.socket")
    if sock is None or not hasattr(sock, "recv"):
        return None

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False  # open, nothing sent since the request
        except ConnectionError:
            return True  # reset by the peer
        except (OSError, ValueError):
            return False  # a closed descriptor, a TLS socket (no flags): not told

    return gone


def input_token_cap(deployment: ModelDeployment) -> int:
    """The deployment's input cap, or the model's context where that is shorter."""
    return served(deployment).runner.max_tokens


def template_tokens(deployment: ModelDeployment) -> int:
    """The tokens the deployment's input format adds to every text (a chat template's), counted in its cap."""
    return getattr(served(deployment).runner, "template_tokens", 0)


def token_count(deployment: ModelDeployment, text: str) -> int:
    """The text's tokens; past the deployment's cap, maybe those of its start only: enough to refuse it."""
    runner = served(deployment).runner
    return runner.token_count(text, runner.max_tokens)


class SlotsFull(Exception):
    """Every slot of the deployment is taken in this process."""


class StreamsFull(SlotsFull):
    """The deployment's streams are all running."""


class GenerationsFull(SlotsFull):
    """The deployment's generation queue is full."""


class EmbeddingsFull(SlotsFull):
    """The deployment's embedding queue is full."""


class ConcurrencySlots:
    """Per deployment, how many of one kind of call run at once in this process, under a cap.

    Streams: each is a batch of its own in a thread of its own, outside the batcher's queue; uncapped, one
    client with a valid token could open any number and take every thread and core of the process. A
    stream's slot is held from before the model starts until its thread ends (the generation finished,
    failed, or stopped after its reader left), so it counts what actually runs. Generations: each waits in
    a server thread for its batch (up to GENERATE_TIMEOUT_SECONDS); uncapped, a flood of them held every
    thread of the process, and its other endpoints waited. Embeddings: the same, up to EMBED_TIMEOUT_SECONDS,
    counted in texts (a call's inputs each take a place in the batcher's queue). `release` may be called any
    number of times."""

    def __init__(self, full: type[SlotsFull]) -> None:
        self.full, self.lock = full, threading.Lock()
        self.running: dict[int, int] = {}

    def take(self, deployment: ModelDeployment, limit: int, count: int = 1) -> Callable[[], None]:
        """The release of `count` slots, or `full` raised when `limit` of the deployment's are taken. What
        is already taken decides, not `count`: a call larger than `limit` (64 texts behind a small cap) is
        let in when the queue ahead of it is short, rather than never."""
        key = deployment.pk
        with self.lock:
            if self.running.get(key, 0) >= limit:
                raise self.full(f"{limit} slots of {deployment.name} are taken")
            self.running[key] = self.running.get(key, 0) + count
        released = threading.Event()

        def release() -> None:
            with self.lock:
                if released.is_set():
                    return
                released.set()
                self.running[key] -= count
                if not self.running[key]:
                    del self.running[key]

        return release

    def in_use(self, deployment: ModelDeployment) -> int:
        with self.lock:
            return self.running.get(deployment.pk, 0)


# A generation (an embedding call) is refused at once (503 with Retry-After), rather than holding a server
# thread for minutes, when this many full batches of its deployment's generations (texts) already wait or run.
GENERATION_QUEUE_BATCHES = 4
EMBED_QUEUE_BATCHES = 4

stream_slots = ConcurrencySlots(StreamsFull)
generation_slots = ConcurrencySlots(GenerationsFull)
embedding_slots = ConcurrencySlots(EmbeddingsFull)


@contextlib.contextmanager
def queue_slot(slots: ConcurrencySlots, deployment: ModelDeployment, batches: int, count: int = 1) -> Iterator[None]:
    """`count` places in the deployment's batcher queue, capped at `batches` full batches (max_batch_size
    each), held while the caller waits and given back however the wait ends (answered, failed, timed out)."""
    release = slots.take(deployment, deployment.max_batch_size * batches, count)
    try:
        yield
    finally:
        release()


def stream(deployment: ModelDeployment, prompt: str, max_new_tokens: int, *,
           release: Callable[[], None] | None = None, via: Served | None = None):  # fmt: skip
    """Text chunks as they are generated: a stream is a batch of its own, outside the batcher. `release` (a
    slot's, see ConcurrencySlots) is called when the model's thread ends, or here when the stream cannot start.
    `via`: the served model to use (the one the stream's events name), else the deployment's current one."""
    try:
        return (via or served(deployment)).runner.stream(prompt, max_new_tokens, on_end=release)
    except BaseException:
        if release is not None:
            release()
        raise
