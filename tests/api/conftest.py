"""Every API test also checks that each command the service sent would reach one shard of a cluster sharded on
doctor_id (tests/shard_routing.py): on the real servers, since mongomock sends no commands."""
import pymongo
import pytest

from tests.shard_routing import ShardRouting

ROUTING = ShardRouting()
# Every client made from here on reports its commands: the service's, however a test builds it (the app fixture,
# its own create_app, service_watched_by, a MONGODB_URI). Outside an API test nothing is judged.
pymongo.monitoring.register(ROUTING)


@pytest.fixture(autouse=True)
def shard_routing():
    """Judge every command the service sends during the test; fail it, naming them, if any would be broadcast."""
    with ROUTING.watching() as seen:
        yield seen
    if seen.broadcasts:
        pytest.fail("commands a cluster sharded on doctor_id would send to every shard:\n"
                    + "\n".join(dict.fromkeys(seen.broadcasts)), pytrace=False)
