"""Model deployments and what was measured about each quantization mode on this host."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.inference.backends import BNB_MODES


class ModelDeployment(models.Model):
    class Task(models.TextChoices):
        EMBEDDING = "embedding", "Embedding"
        GENERATION = "generation", "Generation"

    class Source(models.TextChoices):
        MINILM = "bundled:all-minilm-l6-v2", "Bundled: all-MiniLM-L6-v2 (sentence embeddings)"
        SMOLLM2 = "bundled:smollm2-135m-instruct", "Bundled: SmolLM2-135M-Instruct (GGUF Q4_1)"
        PATH = "path", "Local path (Hugging Face folder or .gguf file)"

    class Device(models.TextChoices):
        AUTO = "auto", "auto (CUDA when present)"
        CPU = "cpu", "CPU"
        CUDA = "cuda", "CUDA"

    class Quantization(models.TextChoices):
        AUTO = "auto", "auto (chosen by measurement)"
        FP32 = "fp32", "fp32"
        BF16 = "bf16", "bf16"
        FP16 = "fp16", "fp16"
        INT8 = "int8", "int8 (torch dynamic, CPU)"
        BNB_INT8 = "bnb_int8", "int8 (bitsandbytes LLM.int8)"
        NF4 = "nf4", "nf4 (bitsandbytes)"
        FP4 = "fp4", "fp4 (bitsandbytes)"

    name = models.SlugField(max_length=64, unique=True, help_text="In the URL: /api/v1/inference/<name>/...")
    service = models.ForeignKey(
        "services.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    source = models.CharField(max_length=40, choices=Source.choices)
    local_path = models.CharField(max_length=500, blank=True, help_text="For source 'path' only.")
    task = models.CharField(max_length=12, choices=Task.choices)
    device = models.CharField(max_length=8, choices=Device.choices, default=Device.AUTO)
    quantization = models.CharField(max_length=10, choices=Quantization.choices, default=Quantization.AUTO)
    chosen_quantization = models.CharField(
        max_length=10, choices=Quantization.choices, blank=True, editable=False,
        help_text="What the last measurement chose for 'auto'.",
    )  # fmt: skip
    chosen_at = models.DateTimeField(null=True, blank=True, editable=False)
    max_batch_size = models.PositiveIntegerField(default=32, validators=[MinValueValidator(1), MaxValueValidator(256)])
    max_queue_delay_ms = models.FloatField(
        default=10.0, validators=[MinValueValidator(0), MaxValueValidator(1000)],
        help_text="How long the first request of a batch may wait for others.",
    )  # fmt: skip
    max_input_tokens = models.PositiveIntegerField(
        default=256, validators=[MinValueValidator(8), MaxValueValidator(4096)]
    )
    max_new_tokens = models.PositiveIntegerField(
        default=64, validators=[MinValueValidator(1), MaxValueValidator(1024)], help_text="Generation: the cap."
    )
    max_concurrent_streams = models.PositiveIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="Generation: streams one serving process runs at once (each runs the model in a thread of "
        "its own, outside the batcher); past it a stream is refused with 503 and Retry-After.",
    )  # fmt: skip
    slo_p95_ms = models.FloatField("p95 SLO (ms)", default=500.0, validators=[MinValueValidator(1)])
    fidelity_budget = models.FloatField(
        default=0.02, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="The fidelity a quantized mode may lose against fp32: embeddings 1 - min cosine, generation "
        "1 - top-1 next-token agreement.",
    )  # fmt: skip
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Written by the serving processes (a queryset update: updated_at, their reload key, is left alone).
    # db_default: the last release's pods insert deployments without it while an upgrade runs.
    load_failure = models.TextField(
        blank=True, editable=False, default="", db_default="",
        help_text="The last load of this deployment that failed on a serving process, where, and what served "
        "instead; cleared by the next load that succeeds.",
    )  # fmt: skip
    load_failed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """What can never serve is refused here, with the field to fix, not as an error on the first call."""
        import importlib.util
        from pathlib import Path

        errors = {}
        bundled = BUNDLED_MODELS.get(self.source)
        if bundled is not None:
            task, context = bundled
            if self.task != task:
                errors["task"] = f"{self.get_source_display()} is a {task} model."
            template = CHAT_TEMPLATE_TOKENS.get(self.source, 0)
            if self.max_input_tokens and self.max_input_tokens > context:
                errors["max_input_tokens"] = f"The model reads at most {context} tokens."
            elif self.max_input_tokens is not None and self.max_input_tokens <= template:
                errors["max_input_tokens"] = (
                    f"At least {template + 1}: the model's chat template adds {template} tokens to every prompt."
                )
            if self.local_path:
                errors["local_path"] = "Only for source 'path'."
        elif self.source == self.Source.PATH:
            if not self.local_path:
                errors["local_path"] = "A local path is needed for source 'path'."
            else:
                try:
                    found = Path(self.local_path).exists()
                except OSError as exc:  # a name too long, a folder this process may not enter: not a 500
                    errors["local_path"] = f"Cannot be looked up on this host: {exc.strerror}."
                else:
                    if not found:
                        errors["local_path"] = "No such file or folder on this host."
        mode = self.quantization
        if mode == self.Quantization.INT8 and self.device == self.Device.CUDA:
            errors["quantization"] = "torch dynamic int8 runs on the CPU only."
        elif mode in BNB_MODES and self.device == self.Device.CPU:
            errors["quantization"] = "bitsandbytes modes need a CUDA device."
        elif mode in BNB_MODES and importlib.util.find_spec("bitsandbytes") is None:
            errors["quantization"] = "bitsandbytes is not installed on this host."
        if errors:
            raise ValidationError(errors)

    @property
    def serving_quantization(self) -> str:
        """What the deployment serves with: the admin's choice, else the measured one, else fp32."""
        if self.quantization != self.Quantization.AUTO:
            return self.quantization
        return self.chosen_quantization or self.Quantization.FP32


# Each bundled model's task and context (position embeddings): MiniLM reads 512 tokens, SmolLM2 8,192.
BUNDLED_MODELS: dict[str, tuple[str, int]] = {
    ModelDeployment.Source.MINILM: (ModelDeployment.Task.EMBEDDING, 512),
    ModelDeployment.Source.SMOLLM2: (ModelDeployment.Task.GENERATION, 8192),
}


# The tokens each bundled generation model's chat template adds to every prompt, counted in its input cap
# (SmolLM2's: its default system prompt and the role markers; Generator.template_tokens, a test keeps them
# equal). Loading its tokenizer from the GGUF file took 18 s here: too slow for admin's check of a form. A
# model from a path is not checked: its prompts past the cap are refused naming the template's share.
CHAT_TEMPLATE_TOKENS: dict[str, int] = {ModelDeployment.Source.SMOLLM2: 30}


class QuantizationProfile(models.Model):
    """One mode of one deployment as measured on this host: speed, memory and fidelity against fp32."""

    deployment = models.ForeignKey(ModelDeployment, on_delete=models.CASCADE, related_name="profiles")
    measured_at = models.DateTimeField(default=timezone.now, help_text="The same for every mode of one measurement.")
    mode = models.CharField(max_length=10, choices=ModelDeployment.Quantization.choices)
    device = models.CharField(max_length=8)
    available = models.BooleanField(default=True)
    chosen = models.BooleanField(default=False)
    verdict = models.TextField(blank=True, help_text="Why it was chosen, why it lost, or why it could not run.")
    load_seconds = models.FloatField(null=True, blank=True)
    p50_ms_batch1 = models.FloatField(null=True, blank=True)
    p95_ms_batch1 = models.FloatField(null=True, blank=True)
    best_batch_size = models.PositiveIntegerField(null=True, blank=True)
    p95_ms_best_batch = models.FloatField(null=True, blank=True)
    sequences_per_s = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True, help_text="Generation: at the best batch size.")
    tokens_per_s_batch1 = models.FloatField(null=True, blank=True, help_text="Generation: one stream alone.")
    ttft_ms = models.FloatField("time to first token (ms)", null=True, blank=True)
    tpot_ms = models.FloatField("time per output token (ms)", null=True, blank=True)
    peak_memory_mb = models.FloatField(
        null=True, blank=True, help_text="Peak RSS growth while loading and serving (CPU); max allocated on CUDA."
    )
    weights_mb = models.FloatField(null=True, blank=True, help_text="The model's tensors in memory.")
    fidelity = models.JSONField(default=dict)
    fidelity_loss = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-measured_at", "mode"]
        indexes = [models.Index(fields=["deployment", "-measured_at"])]

    def __str__(self) -> str:
        return f"{self.deployment.name} {self.mode} {self.measured_at:%Y-%m-%d %H:%M}"
