"""The embedded mode's broker: kombu's filesystem transport, made safe for a worker that polls while others write.

kombu creates a message's file under its final name and then writes it, and its reader takes no lock: a worker
polling in between read an empty file, and the JSONDecodeError ended the worker as "Unrecoverable", which
stopped every process of `make run`. Here a message is written under a name no queue reads and renamed into
place (a rename within a folder is atomic), and a message that cannot be decoded anyway (a file cut short by a
full disk, a hand-made one) is logged and dropped (the read has taken it out of the queue) instead of ending
the worker.
"""

import contextlib
import logging
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".part"  # "<stamp>_<uuid>.<queue>.msg.part" is no queue's message until renamed


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        """`payload` onto `queue`, whole or not at all."""
        name = os.path.join(self.data_folder_out, f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg")
        partial = name + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, name)
        except OSError as exc:
            # A partial file (a full disk) is no queue's message: left, it stayed for good, listed by every poll.
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc

    def _get(self, queue: str) -> dict:
        """The next message of `queue` that decodes; one that does not is skipped, not fatal."""
        while True:
            try:
                return super()._get(queue)
            except ValueError:  # taken out of the queue folder (and deleted) by the read: not read again
                logger.error("Skipped an unreadable message of the embedded broker's queue %s", queue)


class Transport(filesystem.Transport):
    Channel = Channel
