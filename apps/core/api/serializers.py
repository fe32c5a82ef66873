from rest_framework import serializers


class ApiRootLinksOutputSerializer(serializers.Serializer):
    whoami = serializers.CharField(help_text="The caller and its scopes: a token check.")
    patients = serializers.CharField(help_text="Patients (scope patient:read); their vitals, encounters, medications.")
    audit = serializers.CharField(help_text="The audit trail (scope audit:read).")
    services = serializers.CharField(help_text="The service registry (staff).")
    metrics_slo = serializers.CharField(help_text="Each service's SLO status (staff).")
    metrics_series = serializers.CharField(help_text="Latency, throughput and cache series (staff).")
    metrics_alerts = serializers.CharField(help_text="Alerts (staff).")
    cache_namespaces = serializers.CharField(help_text="Cache namespaces and their hit rates (staff).")
    ratelimits = serializers.CharField(help_text="Rate-limit policies in force (staff).")
    benchmark_runs = serializers.CharField(help_text="Benchmark runs (staff).")
    scaling_policies = serializers.CharField(help_text="Scaling policies and forecasts (staff).")
    inference_deployments = serializers.CharField(
        help_text="Model deployments (staff); each answers POST <name>/embed or <name>/generate (scope inference)."
    )
    schema = serializers.CharField(help_text="This API's OpenAPI 3 document.")
    docs = serializers.CharField(help_text="Swagger UI over the schema.")
    fhir = serializers.CharField(help_text="The FHIR R4 base; its CapabilityStatement is at metadata.")


class ApiRootOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    authentication = serializers.CharField()
    links = ApiRootLinksOutputSerializer(help_text="Paths on this host.")
