"""Every Kubernetes manifest validates offline against the API schemas (kubernetes-validate)."""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helpers import REPO_ROOT, embedded_env, run_python

DEPLOY = REPO_ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
KUBERNETES_VERSION = "1.33"


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[Path]:
    # deploy/generated/ holds `manage.py scaling export` output (CRDs included): tested in tests/scaling.
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml" and "generated" not in p.parts)


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_is_valid(path):
    for document in _documents(path):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def _kustomize(directory: Path) -> list[dict]:
    """What `kubectl apply -k directory` would send (kubectl's own kustomize, offline: no cluster here)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _overlay(tmp_path: Path, patches: str) -> Path:
    """An overlay of the base with `patches` (kustomize accepts the base only by a relative path)."""
    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {os.path.relpath(BASE, tmp_path)}\npatches:\n{patches}"
    )
    return tmp_path


def test_the_built_base_is_valid():
    """The files one by one are valid; this is what kustomize makes of them (namespace, labels, images)."""
    documents = _kustomize(BASE)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert {doc["metadata"]["namespace"] for doc in documents} == {"controlplane"}


def test_the_ingress_names_its_class_and_an_overlay_changes_it(tmp_path):
    """Without ingressClassName, a cluster with several controllers (or none marked default) served the
    Ingress by none: the product was unreachable with every pod ready. The README's patch changes it."""
    ingress = _documents(BASE / "ingress.yaml")[0]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    overlay = _overlay(
        tmp_path,
        "  - target: {kind: Ingress, name: controlplane}\n"
        "    patch: |-\n"
        "      - {op: replace, path: /spec/ingressClassName, value: traefik}\n",
    )
    [built] = [doc for doc in _kustomize(overlay) if doc["kind"] == "Ingress"]
    assert built["spec"]["ingressClassName"] == "traefik"


def test_the_ingress_serves_every_host_over_tls_and_the_settings_accept_it():
    """The Ingress had no tls: patient data went over plain HTTP, and the session and CSRF cookies (Secure
    with DEBUG off) never came back, so no one could sign in. Each host it serves is one Django allows,
    with its https origin trusted for CSRF."""
    spec = _documents(BASE / "ingress.yaml")[0]["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    covered = {host for entry in spec["tls"] for host in entry["hosts"] if entry.get("secretName")}
    assert hosts <= covered, hosts - covered
    allowed = {host.strip() for host in _config()["ALLOWED_HOSTS"].split(",")}
    origins = {origin.strip() for origin in _config()["CSRF_TRUSTED_ORIGINS"].split(",")}
    for host in hosts:
        assert host in allowed and f"https://{host}" in origins, host


def test_kustomization_lists_every_base_manifest():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present


def _deployments() -> dict[str, dict]:
    return {
        doc["metadata"]["name"]: doc
        for path in BASE.glob("*-deployment.yaml")
        for doc in _documents(path)
        if doc["kind"] == "Deployment"
    }


def test_the_five_processes_are_deployed():
    """The Procfile's processes, each a Deployment of its own name: the long queues' worker apart, as in make run."""
    assert set(_deployments()) == {
        "controlplane-api",
        "controlplane-live",
        "controlplane-worker",
        "controlplane-longworker",
        "controlplane-beat",
    }


@pytest.mark.parametrize("name", ["controlplane-api", "controlplane-live"])
def test_web_processes_probe_healthz_and_readyz(name):
    container = _deployments()[name]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_process_reads_config_and_the_secret_reference():
    for deployment in _deployments().values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        sources = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"configMapRef": "controlplane-config", "secretRef": "controlplane-secrets"}


def test_the_migration_job_is_gone_once_finished_and_every_pod_waits_for_it():
    """The Job's template is immutable: kept after it finished (an hour), the next release's
    `kubectl apply -k` failed on it. It is deleted as it succeeds (a failed one stays, below), so nothing
    ordered the new pods after it: each waits in an init container (tests/deploy/test_migration_gate.py
    runs it)."""
    job = _documents(BASE / "migrate-job.yaml")[0]["spec"]
    assert job["ttlSecondsAfterFinished"] == 0
    for name, deployment in _deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        [gate] = pod["initContainers"]
        assert gate["name"] == "wait-for-migrations" and "migrate --check" in gate["command"][-1], name
        assert gate["envFrom"] == pod["containers"][0]["envFrom"], name  # the same database


def test_a_failed_migration_keeps_its_job_and_logs_while_a_successful_one_goes():
    """backoffLimit 3 with ttlSecondsAfterFinished 0: a migration that failed made the Job Failed within a
    minute and the TTL controller deleted it, pod and logs with it, so no one could read why the release
    stalled. Now a failure never finishes the Job (its one pod retries at the kubelet's back-off, at least a
    week of tries) and only a success lets the TTL delete it. Read from the YAML: no cluster exists here."""
    job = _documents(BASE / "migrate-job.yaml")[0]["spec"]
    pod = job["template"]["spec"]
    kubelet_max_backoff_minutes = 5
    assert job["ttlSecondsAfterFinished"] == 0
    assert "activeDeadlineSeconds" not in job and "podFailurePolicy" not in job  # each would fail the Job
    assert pod["restartPolicy"] == "OnFailure"  # one pod, restarted: its previous logs are the failure's
    assert job["backoffLimit"] * kubelet_max_backoff_minutes >= 7 * 24 * 60
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def _server_drain_seconds(command: list[str]) -> int:
    """How long the web server, asked to stop, waits for in-flight requests: read by the server's own
    command-line parser (gunicorn with its config file), defaults included."""
    if command[0] == "gunicorn":
        from gunicorn.app.wsgiapp import WSGIApplication

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.argv", command)
            return WSGIApplication().cfg.graceful_timeout
    from uvicorn.main import main as uvicorn_cli  # the click command (the package's `main` is a function)

    timeout = uvicorn_cli.make_context("uvicorn", command[1:]).params["timeout_graceful_shutdown"]
    assert timeout is not None, "uvicorn waits for ever: the kubelet's SIGKILL would end it, mid-request"
    return timeout


@pytest.mark.parametrize("name", ["controlplane-api", "controlplane-live"])
def test_web_pods_finish_in_flight_requests_before_they_are_killed(name):
    """Without a preStop pause the server stopped listening while endpoints and the ingress still sent it
    requests (refused); the api's 30 s grace period was also gunicorn's own graceful timeout, so the
    kubelet's SIGKILL came as the last requests were allowed to finish. The pause, then the server's
    drain, then a few seconds to exit, fit the grace period."""
    pod = _deployments()[name]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and int(pause[1]) >= 5
    grace = pod.get("terminationGracePeriodSeconds", 30)
    assert int(pause[1]) + _server_drain_seconds(container["command"]) + 5 <= grace


def test_each_replicated_process_has_a_disruption_budget_that_lets_a_drain_proceed():
    """A node drain evicted both api pods (or both live, or both workers) at once: down until rescheduled.
    Each Deployment of more than one replica has a budget selecting its pods; it leaves one disruption
    allowed, so a drain is never blocked for good (not even scaled to one replica)."""
    budgets = {
        doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: doc["spec"]
        for doc in _documents(BASE / "pdb.yaml")
    }
    for name, deployment in _deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if deployment["spec"]["replicas"] > 1:
            assert labels["app.kubernetes.io/name"] == name and name in budgets, name
    for name, budget in budgets.items():
        assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}}
        assert name in _deployments()


def test_replicas_spread_over_nodes():
    """The scheduler may put both replicas of a process on one node (a node's loss then took the process
    down, which no disruption budget prevents): each replicated Deployment asks to spread its own pods by
    node, softly, so a one-node cluster still schedules them."""
    for name, deployment in _deployments().items():
        if deployment["spec"]["replicas"] > 1:
            [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
            assert spread["topologyKey"] == "kubernetes.io/hostname", name
            assert spread["whenUnsatisfiable"] == "ScheduleAnyway", name
            assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"], name


def test_no_pod_holds_a_kubernetes_api_token_it_does_not_use():
    """Every pod had the namespace's default service account token mounted, which a compromised process
    could use against the API server with whatever that account is bound to. Only the scaling policies
    call the API, with SCALING_KUBECONFIG set, and the base leaves it unset."""
    assert "SCALING_KUBECONFIG" not in _config()
    for name, pod in _pod_templates().items():
        assert pod["automountServiceAccountToken"] is False, name
        assert not {"SCALING_KUBECONFIG"} & {n for c in pod["containers"] for n in _env_names(c)}, name


def test_beat_never_runs_twice():
    beat = _deployments()["controlplane-beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"


def test_dockerfile_builds_the_frontend_and_runs_as_non_root():
    """The image's user is the one every pod runs as: a pod's runAsUser without an entry in the image's
    /etc/passwd has no home and no name, and a group other than the image's own reads nothing it owns."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "npm run build" in dockerfile
    uid = re.search(r"useradd [^\n]*--uid (\d+)", dockerfile).group(1)
    gid = re.search(r"groupadd [^\n]*--gid (\d+)", dockerfile).group(1)
    assert re.search(rf"^USER {uid}$", dockerfile, re.M)
    for name, pod in _pod_templates().items():
        assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == (uid, gid), name


# --- what the manifests ask of the product, checked against the product itself ------------------------


def _config() -> dict[str, str]:
    return _documents(BASE / "configmap.yaml")[0]["data"]


def _pod_templates() -> dict[str, dict]:
    """Every pod the base runs (Deployments and the migration Job), by its workload's name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for path in BASE.glob("*.yaml")
        for doc in _documents(path)
        if doc["kind"] in ("Deployment", "Job")
    }


def _probe_requests() -> list[tuple[str, str, str]]:
    """(container, Host header, path) of each HTTP probe. The kubelet sends the pod's IP as the Host unless
    the probe names one; a pod IP is in no ALLOWED_HOSTS."""
    requests = []
    for name, pod in _pod_templates().items():
        for container in pod["containers"]:
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(kind, {}).get("httpGet")
                if probe:
                    headers = {h["name"].lower(): h["value"] for h in probe.get("httpHeaders", [])}
                    requests.append((f"{name} {kind}", headers.get("host", "10.244.1.17:8000"), probe["path"]))
    return requests


def test_probes_and_benchmark_runs_pass_django_host_validation(tmp_path):
    """With the ConfigMap's settings (DEBUG off), Django answers 400 to a Host outside ALLOWED_HOSTS: a probe
    sending the pod's IP never passed (api and live restarted for ever), nor did a benchmark run sent to
    BENCHMARK_TOKEN_HOSTS' `controlplane-api`. Asked of the real settings and middleware, in a process of
    its own."""
    probes = _probe_requests()
    assert len(probes) == 6  # startup, liveness and readiness of api and live
    benchmark_hosts = [h.strip() for h in _config()["BENCHMARK_TOKEN_HOSTS"].split(",")]
    asked = [*probes, *((f"benchmark run to {host}", host, "/healthz") for host in benchmark_hosts)]
    code = (
        "import json, os, django; django.setup()\n"
        "from django.test import Client\n"
        "asked = json.loads(os.environ['ASKED'])\n"
        "print(json.dumps([[who, Client().get(path, HTTP_HOST=host).status_code] for who, host, path in asked]))\n"
    )
    settings = {**_config(), "SECRET_KEY": "s" * 50, "INFERENCE_PRELOAD": "false"}  # no models loaded here
    env = embedded_env(tmp_path, **settings, ASKED=json.dumps(asked))
    result = run_python(code, env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert [who for who, status in answers if status != 200] == []


def test_every_pod_meets_the_restricted_pod_security_standard():
    """What a namespace enforcing `restricted` admits (non-root, no privilege escalation, no capabilities,
    the runtime's seccomp profile), plus a read-only root filesystem: the image's files are root's, so the
    app writes only to /tmp and VAR_DIR, which are volumes."""
    var_dir = re.search(r"VAR_DIR=(\S+)", (DEPLOY / "Dockerfile").read_text()).group(1)
    for name, pod in _pod_templates().items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name
            assert context.get("readOnlyRootFilesystem") is True, name
            mounted = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert {"/tmp", var_dir} <= mounted, name  # settings create folders under VAR_DIR at import
        # Unbounded, a runaway writer (a benchmark's output, a leak of temporary files) filled the node's disk
        # and every pod on it was evicted; bounded, only this pod is.
        for volume in pod["volumes"]:
            assert volume["emptyDir"].get("sizeLimit"), (name, volume["name"])


def _processes_of(name: str, pod: dict) -> int:
    """Database pools a pod holds: one per gunicorn worker, per Celery pool process, else one."""
    command = pod["containers"][0].get("command", [])
    for option in ("--workers=", "--concurrency="):
        counts = [int(arg.removeprefix(option)) for arg in command if arg.startswith(option)]
        if counts:
            return counts[0]
    return 1


def _pool_setting(container: dict, name: str) -> int:
    own = {variable["name"]: variable["value"] for variable in container.get("env", [])}
    return int(own.get(name, _config().get(name, {"DB_POOL_MIN_SIZE": 10, "DB_POOL_MAX_SIZE": 50}[name])))


def test_database_pools_at_rest_fit_postgresql_default_connections():
    """Each process opens its pool's minimum at start. The ConfigMap's 10 per process, over 2 api pods x 2
    gunicorn workers, 2 live pods, 2 worker pods x 2 Celery processes, beat and the migration, held 110
    connections at rest: past PostgreSQL's default max_connections (100, 3 kept for superusers), so the
    last pods to start got none. The pools' minimum together must leave room for them to grow."""
    at_rest = peak = 0
    for name, pod in _pod_templates().items():
        pods = _deployments().get(name, {"spec": {"replicas": 1}})["spec"]["replicas"]
        container = pod["containers"][0]
        processes = pods * _processes_of(name, pod)
        at_rest += processes * _pool_setting(container, "DB_POOL_MIN_SIZE")
        peak += processes * _pool_setting(container, "DB_POOL_MAX_SIZE")
        assert _pool_setting(container, "DB_POOL_MIN_SIZE") <= _pool_setting(container, "DB_POOL_MAX_SIZE"), name
    assert at_rest <= 97 // 2, at_rest
    # The api's 16 request threads per worker each need a connection: its pool must not make them queue.
    assert _pool_setting(_pod_templates()["controlplane-api"]["containers"][0], "DB_POOL_MAX_SIZE") >= 16
    # The ConfigMap states the peak, for sizing max_connections (or PgBouncer).
    assert f"{peak} connections" in (BASE / "configmap.yaml").read_text()


_SHORT_OPTIONS = {"-A": "--app", "-Q": "--queues", "-c": "--concurrency", "-b": "--bind"}
_ADDRESS_OPTIONS = {"--bind", "--host", "--port"}  # the Procfile's come from make run's variables


def _options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """(program and subcommands, {option: value}) of a command line, --opt=value and -o value alike."""
    words, options, index = [], {}, 0
    while index < len(argv):
        word = argv[index]
        if word.startswith("-"):
            key, has_value, value = word.partition("=")
            key = _SHORT_OPTIONS.get(key, key)
            if not has_value and index + 1 < len(argv) and not argv[index + 1].startswith("--"):
                value, index = argv[index + 1], index + 1
            options[key] = value
        else:
            words.append(word)
        index += 1
    return words, options


def test_each_process_runs_the_procfile_command():
    """The Procfile is what `make run` starts; a Deployment running something else was never tested as
    such (the api's access log, whose format keeps paths and so MRNs out, was missing in the cluster)."""
    for process, line in _procfile().items():
        words, options = _options(shlex.split(line))
        container = _deployments()[f"controlplane-{process}"]["spec"]["template"]["spec"]["containers"][0]
        deployed_words, deployed = _options(container["command"])
        assert deployed_words == words, process
        for option, value in options.items():
            if option == "--queues":  # the same queues, in any order
                assert set(deployed.get(option, "").split(",")) == set(value.split(",")), process
            elif option not in _ADDRESS_OPTIONS:
                assert deployed.get(option) == value, (process, option)


def _procfile() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in (REPO_ROOT / "Procfile").read_text().splitlines() if ": " in line)


def _consumers() -> dict[str, set[str]]:
    """{queue: the Deployments whose Celery worker consumes it}."""
    consumers: dict[str, set[str]] = {}
    for name, deployment in _deployments().items():
        words, options = _options(deployment["spec"]["template"]["spec"]["containers"][0]["command"])
        if words[:1] == ["celery"] and "worker" in words:
            for queue in options["--queues"].split(","):
                consumers.setdefault(queue, set()).add(name)
    return consumers


def test_the_cluster_splits_its_workers_as_make_run_does():
    """One worker Deployment consumed default, benchmarks and inference, 2 slots a pod: two long tasks (a
    benchmark run, an optimizer step) held both and the heartbeat, alerts and rate-limit adaptation waited behind
    them (65-71 s in make run, /readyz saying the worker was down). Each queue has one Deployment, and the one of
    `default` (beat's short periodic tasks) consumes none of the queues long work is routed to."""
    from django.conf import settings

    from controlplane.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    consumers = _consumers()
    assert set(consumers) == {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert all(len(names) == 1 for names in consumers.values()), consumers
    long_queues = {queue_of(task) for task in ("benchmarks.execute_run", "optimizer.run_step", "scaling.forecast")}
    [short_worker] = consumers[queue_of("core.heartbeat")]
    assert short_worker == "controlplane-worker"
    assert not {queue for queue, names in consumers.items() if short_worker in names} & long_queues


def test_the_long_worker_keeps_the_run_files_and_the_time_its_tasks_need():
    """The benchmark runs' 4Gi VAR_DIR volume is the `benchmarks` consumer's; it waits longer than the short
    worker for its running tasks at shutdown, and is probed and budgeted as a replicated process."""
    [runner] = _consumers()["benchmarks"]
    pods = {name: deployment["spec"]["template"]["spec"] for name, deployment in _deployments().items()}
    volumes = {name: {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"]} for name, pod in pods.items()}
    assert volumes[runner]["var"] == "4Gi"
    assert volumes["controlplane-worker"]["var"] != "4Gi"
    grace = {name: pod.get("terminationGracePeriodSeconds", 30) for name, pod in pods.items()}
    assert grace[runner] >= 600 > grace["controlplane-worker"]
    limits = {name: pod["containers"][0]["resources"]["limits"]["memory"] for name, pod in pods.items()}
    assert limits[runner] == "4Gi"


def _settings_read() -> set[str]:
    """Every variable controlplane/settings.py reads through django-environ."""
    source = (REPO_ROOT / "controlplane" / "settings.py").read_text()
    return set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def test_the_secret_holds_every_secret_and_nothing_else_names_one():
    """docs/security.md's secrets, each in the Secret: the example held four of eight, and the others
    are derived from SECRET_KEY, so rotating it broke `audit verify` and orphaned the cache. None is in the
    ConfigMap or a container's env, and every name given to the processes is one settings.py reads."""
    secret = _documents(DEPLOY / "k8s" / "secret.example.yaml")[0]["stringData"]
    listed = re.search(r"^\| Secrets \|(.*)$", (REPO_ROOT / "docs" / "security.md").read_text(), re.M).group(1)
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", listed)) | {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    assert documented <= set(secret), documented - set(secret)
    given = {name for pod in _pod_templates().values() for c in pod["containers"] for name in _env_names(c)}
    assert not (set(secret) & (set(_config()) | given))
    read = _settings_read()
    assert {"SECRET_KEY", "DATABASE_URL", "DB_POOL_MIN_SIZE"} <= read  # the pattern finds what it should
    assert (set(secret) | set(_config()) | given) - read == set()


def test_the_image_and_the_config_name_only_what_the_code_reads():
    """A misspelt name is ignored without a word: the Dockerfile's ENV (the Python interpreter's own aside)
    must be settings the code reads, and READYZ_REQUIRED's values /readyz checks (a misspelt one gated
    readiness on nothing)."""
    from apps.core.selectors import CHECKS

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    block = re.search(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, re.M).group(1)
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", block)) - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    assert {"DEBUG", "VAR_DIR"} <= names  # the pattern finds what it should
    assert names <= _settings_read(), names - _settings_read()
    required = {name.strip() for name in _config()["READYZ_REQUIRED"].split(",")}
    assert required <= set(CHECKS), required - set(CHECKS)


def _env_names(container: dict) -> set[str]:
    return {variable["name"] for variable in container.get("env", [])}


def _exec_probes() -> dict[str, list[str]]:
    """{"<workload> <probe kind>": command} of every exec probe."""
    return {
        f"{name} {kind}": container[kind]["exec"]["command"]
        for name, pod in _pod_templates().items()
        for container in pod["containers"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if "exec" in container.get(kind, {})
    }


def test_no_probe_asks_the_broker():
    """`celery inspect ping` went through RabbitMQ: a broker restart failed every worker's liveness and
    Kubernetes killed the tasks they were running. Nor does a probe start Django or Celery (seconds of CPU
    each period)."""
    for probe, command in _exec_probes().items():
        words = " ".join(command)
        assert "celery" not in words and "manage.py" not in words, probe


@pytest.mark.parametrize("process", ["worker", "longworker", "beat"])
def test_celery_liveness_reads_the_heartbeat_its_loop_touches(process):
    """The probe is apps/core/liveness.py, which the image holds, run from its WORKDIR; the heartbeat
    lands in /tmp, a volume. Its window leaves a process several missed touches before a restart, and
    restarts a stuck one within minutes. Beat had no liveness at all: hung on a database lock, it stayed
    Running and no nightly job was sent."""
    from apps.core.liveness import MAX_AGE, TOUCH_INTERVAL

    container = _deployments()[f"controlplane-{process}"]["spec"]["template"]["spec"]["containers"][0]
    probe = container["livenessProbe"]
    process = "worker" if process == "longworker" else process  # a Celery worker: the file its loop touches
    assert probe["exec"]["command"] == ["python", "-m", "apps.core.liveness", process]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY apps/ apps/" in dockerfile and "WORKDIR /app" in dockerfile
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}
    assert not _env_names(container) & {f"CELERY_{process.upper()}_HEARTBEAT_FILE", "TMPDIR"}  # the default, in /tmp
    assert MAX_AGE >= 6 * TOUCH_INTERVAL
    assert MAX_AGE + probe["periodSeconds"] * probe["failureThreshold"] <= 300


def test_beat_runs_the_settings_scheduler_with_its_heartbeat():
    """The heartbeat comes from beat's scheduler, which the Deployment names: it must be the one the
    settings choose (the schedules admins edit), with the touch added."""
    from celery.utils.imports import symbol_by_name
    from django.conf import settings

    _, options = _options(_deployments()["controlplane-beat"]["spec"]["template"]["spec"]["containers"][0]["command"])
    scheduler = symbol_by_name(options["--scheduler"])
    assert scheduler.__module__ == "apps.core.beat_liveness"
    # The settings' scheduler is this one's base (or this one itself, once the settings name it).
    assert symbol_by_name(settings.CELERY_BEAT_SCHEDULER) in scheduler.__mro__


def _labels_match(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels and In expressions: what these policies use) against a pod's labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_the_network_policies_let_in_only_what_the_product_sends(tmp_path):
    """The opt-in component, built onto the base: every pod is covered by the default deny; the worker and beat
    take no connection; the api and live pods only on their serving port, from the ingress controller (and the
    api from the benchmark runs of the `benchmarks` queue's worker, and Prometheus); each policy's port is one
    the pods it selects name."""
    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {os.path.relpath(BASE, tmp_path)}\n"
        f"components:\n  - {os.path.relpath(DEPLOY / 'k8s' / 'components' / 'network-policies', tmp_path)}\n"
    )
    documents = _kustomize(tmp_path)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    policies = [doc for doc in documents if doc["kind"] == "NetworkPolicy"]
    pods = {
        doc["metadata"]["name"]: doc["spec"]["template"] for doc in documents if doc["kind"] in ("Deployment", "Job")
    }
    [deny] = [p for p in policies if not p["spec"].get("ingress")]
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["policyTypes"] == ["Ingress"]
    allowed: dict[str, set[str]] = {name: set() for name in pods}
    for policy in policies:
        for name, pod in pods.items():
            if not _labels_match(policy["spec"]["podSelector"], pod["metadata"]["labels"]):
                continue
            port_names = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            for rule in policy["spec"].get("ingress", []):
                assert {p["port"] for p in rule["ports"]} <= port_names, (policy["metadata"]["name"], name)
                for peer in rule["from"]:
                    if "podSelector" in peer:
                        allowed[name] |= {
                            n for n, p in pods.items() if _labels_match(peer["podSelector"], p["metadata"]["labels"])
                        }
                    else:
                        allowed[name].add(
                            "namespace " + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                        )
    [benchmark_runner] = _consumers()["benchmarks"]
    assert benchmark_runner == "controlplane-longworker"
    assert allowed == {
        "controlplane-api": {"namespace ingress-nginx", "namespace monitoring", benchmark_runner},
        "controlplane-live": {"namespace ingress-nginx"},
        "controlplane-worker": set(),
        "controlplane-longworker": set(),
        "controlplane-beat": set(),
        "controlplane-migrate": set(),
    }


def test_the_scaling_apply_component_gives_the_worker_alone_the_rights_kube_py_uses(tmp_path):
    """SCALING_KUBECONFIG=in-cluster had no account or rights to go with it: an operator wrote their own, or
    bound a ClusterRole (edit, cluster-admin) that gave the worker the whole cluster. The opt-in component,
    built onto the base (kubectl kustomize, offline: no cluster here): the worker alone holds a token, its
    Role in the policies' namespace allows exactly the verbs apps/scaling/kube.py sends on each kind it
    applies, and every process knows a cluster is configured."""
    from apps.scaling import kube
    from apps.scaling.models import ScalingPolicy

    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {os.path.relpath(BASE, tmp_path)}\n"
        f"components:\n  - {os.path.relpath(DEPLOY / 'k8s' / 'components' / 'scaling-apply', tmp_path)}\n"
    )
    documents = _kustomize(tmp_path)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    assert by_kind["ConfigMap", "controlplane-config"]["data"]["SCALING_KUBECONFIG"] == "in-cluster"

    pods = {
        name: doc["spec"]["template"]["spec"] for (kind, name), doc in by_kind.items() if kind in ("Deployment", "Job")
    }
    holding = {name for name, pod in pods.items() if pod.get("automountServiceAccountToken") is not False}
    assert holding == {"controlplane-worker"}
    account = by_kind["ServiceAccount", pods["controlplane-worker"]["serviceAccountName"]]
    assert account["automountServiceAccountToken"] is False  # a pod of the account mounts it only if it asks

    role, binding = by_kind["Role", "controlplane-scaling"], by_kind["RoleBinding", "controlplane-scaling"]
    policies_namespace = ScalingPolicy._meta.get_field("namespace").default
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == policies_namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "controlplane-scaling",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    assert account["metadata"]["namespace"] == by_kind["Deployment", "controlplane-worker"]["metadata"]["namespace"]

    # Server-side apply (its dry runs too) is a PATCH, which creates an object not there yet; withdrawals GET
    # the object, then DELETE it as read.
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    used = {}
    for path in kube.RESOURCES.values():
        parts = path.strip("/").split("/")
        group = "" if parts[0] == "api" else parts[1]
        used[group, parts[-1]] = {"create", "patch", "delete", "get"}
    assert granted == used
