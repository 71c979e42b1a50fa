"""A Python caller of a batch-serving node, with nats-py and msgpack only:
what a user in another language writes, from docs/distributed.md's wire
format. Run by tests/python_client.rs against a node serving "squares"
(u32 -> u32, x * x). Exits non-zero on any mismatch."""

import asyncio
import sys

import msgpack
import nats


async def main(url: str) -> None:
    nc = await nats.connect(url)
    try:
        # One item: the payload is the item, the reply its output.
        reply = await nc.request("bsv1.squares.call", msgpack.packb(7),
                                 timeout=10, headers={"BS-Call": "1 one msgpack normal"})
        kind = reply.headers["BS-Reply"].split(" ")
        assert kind[0] == "done", reply.headers
        assert msgpack.unpackb(reply.data) == 49, reply.data

        # Many items with a deadline: a MessagePack array each way.
        reply = await nc.request("bsv1.squares.call", msgpack.packb([1, 2, 3]),
                                 timeout=10, headers={"BS-Call": "1 many msgpack high 5000000"})
        assert reply.headers["BS-Reply"].startswith("done "), reply.headers
        assert msgpack.unpackb(reply.data) == [1, 4, 9], reply.data

        # Concurrent callers batch together on the node.
        replies = await asyncio.gather(*[
            nc.request("bsv1.squares.call", msgpack.packb(i), timeout=10,
                       headers={"BS-Call": "1 one msgpack normal"})
            for i in range(32)
        ])
        assert [msgpack.unpackb(r.data) for r in replies] == [i * i for i in range(32)]

        # A mistake gets a clear error reply, with the service API's headers.
        reply = await nc.request("bsv1.squares.call", b"\xc1", timeout=10,
                                 headers={"BS-Call": "1 one msgpack normal"})
        assert reply.headers["BS-Reply"].split(" ")[2] == "bad_request", reply.headers
        assert reply.headers["Nats-Service-Error-Code"] == "400", reply.headers

        # The node is discoverable through the service API.
        stats = await nc.request("$SRV.STATS.bsv1-squares", b"", timeout=10)
        assert b'"queue_capacity"' in stats.data, stats.data
    finally:
        await nc.close()
    print("python client: ok")


asyncio.run(main(sys.argv[1]))
