"""The Redis channel layer's receive blocks in BZPOPMIN for 5 s at a time (channels_redis), and redis-py 8 reads every
answer with a 5 s socket timeout by default: a channel with nothing for it for 5 s raised redis' TimeoutError out of
`receive()`, which ended the live feed's consumer ("Exception in ASGI application") and dropped the dashboard's socket
without a close frame (seen under `make run` on Redis: a snapshot, five heartbeats, then the drop). The settings give
the layer's connections a read timeout above that block, so an idle channel keeps waiting and still gets its message."""

import asyncio

from channels.layers import get_channel_layer
from django.conf import settings


async def test_c_an_idle_channel_outlives_the_redis_read_timeout_and_gets_its_message():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"  # REDIS_URL set
    layer = get_channel_layer()
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    # Silence for two whole BZPOPMIN blocks and more: the old read timeout fired at the end of the first.
    await asyncio.wait({receiving}, timeout=layer.brpop_timeout * 2 + 2)
    assert not receiving.done(), receiving.exception()
    await layer.send(channel, {"type": "live.snapshot", "seq": 1})
    message = await asyncio.wait_for(receiving, timeout=120)
    assert message == {"type": "live.snapshot", "seq": 1}
