"""The resource monitor samples the real host, PostgreSQL and Redis, and keeps recommendations current."""

import pytest

from apps.resources import services
from apps.resources.models import ResourceRecommendation
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db


def test_a_sample_reads_the_host_database_and_redis():
    sample = services.resources_sample(cpu_interval=0.1)
    assert 0 <= sample.cpu_pct <= 100 and 0 < sample.memory_pct < 100 and 0 < sample.disk_pct < 100
    assert 0 < sample.db_connections_pct <= 100
    assert sample.pool_pct is not None
    assert sample.redis_memory_bytes > 0


def test_crossing_a_threshold_opens_one_recommendation_and_calm_samples_resolve_it():
    sample = services.resources_sample(cpu_interval=0.1)
    low = {"cpu": 101.0, "memory": 0.0, "disk": 101.0, "pool": 101.0, "redis_memory": 101.0}
    with use_thresholds(low):
        services.recommendations_update(sample=sample)
        services.recommendations_update(sample=sample)
    memory = ResourceRecommendation.objects.get(kind="memory")
    assert memory.status == "open" and memory.occurrences == 2
    assert "CACHE_L1_MAX_BYTES" in memory.message
    with use_thresholds({**low, "memory": 100.0}):
        for _ in range(services.RECOVER_SAMPLES):
            services.recommendations_update(sample=sample)
    memory.refresh_from_db()
    assert memory.status == "resolved" and memory.resolved_at is not None


def test_a_full_pool_recommends_raising_its_maximum():
    sample = services.resources_sample(cpu_interval=0.1)
    sample.pool_pct = 95.0
    with use_thresholds({"cpu": 101, "memory": 101, "disk": 101, "pool": 90, "redis_memory": 101}):
        [recommendation] = services.recommendations_update(sample=sample)
    assert recommendation.kind == "pool" and "DB_POOL_MAX_SIZE" in recommendation.message


def test_database_connections_count_client_sessions_against_the_slots_they_may_take():
    """pg_stat_activity also lists the server's own processes (checkpointer, WAL writer...), which take no
    connection slot: counted, a server at 97 of its 97 usable slots read 101%, an idle one some 5%. Read in
    one transaction, which holds one snapshot of the server's sessions."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE backend_type = 'client backend'), count(*) FROM pg_stat_activity")
        clients, listed = cursor.fetchone()
        cursor.execute(
            "SELECT current_setting('max_connections')::int, rolsuper, "
            "current_setting('superuser_reserved_connections')::int"
            " + coalesce(current_setting('reserved_connections', true), '0')::int FROM pg_roles "
            "WHERE rolname = current_user"
        )
        max_connections, superuser, reserved = cursor.fetchone()
        slots = max_connections if superuser else max_connections - reserved
        assert listed > clients  # the server's own processes are there to be left out
        assert services._database_connections_pct() == round(100 * clients / slots, 1)
