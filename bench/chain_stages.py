"""Where an order's time between stored and paid goes, read from the events themselves.

Each Kafka record carries its producer's create time (librdkafka stamps it when the
message is handed over). For the orders of the chain-latency step this reads the
`order.created` and `payment.completed` records and splits each order's chain into:

- relay:   order stored (`created_at`) → `order.created` handed to the producer by the outbox relay;
- payment: → `payment.completed` handed over (the broker storing the first, payment-service's
           fetch, its handling);
- settle:  → order paid (`updated_at`: the broker storing the second, order-service's fetch,
           its handling and commit).

All clocks are this machine's, so the stages add up to the chain.
"""

import json
import statistics
import time

from principals import operator_client  # harness.py puts infra/scripts on the path


def record_times(brokers, topic, ids, id_field, timeout_s=20):
    """`{order id: record create time in seconds}` for every record of `topic` naming one of `ids`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**operator_client(brokers), "group.id": f"{topic}.stages", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found, deadline = {}, time.time() + timeout_s
        while len(found) < len(ids) and time.time() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            order_id = json.loads(message.value()).get(id_field)
            if order_id in ids:
                found[order_id] = message.timestamp()[1] / 1000
        return found
    finally:
        consumer.close()


def stages(brokers, prefix, paid):
    """Medians of each stage, in ms, over the orders in `paid` (`{order id: (stored, settled)}`)."""
    ids = set(paid)
    relayed = record_times(brokers, f"{prefix}order.created", ids, "orderId")
    charged = record_times(brokers, f"{prefix}payment.completed", ids, "orderId")
    rows = [(stored, relayed[o], charged[o], settled) for o, (stored, settled) in paid.items()
            if o in relayed and o in charged]
    if not rows:
        return {}
    median = lambda xs: round(statistics.median(xs) * 1000, 2)
    return {"orders": len(rows),
            "relay_p50_ms": median([r - s for s, r, _, _ in rows]),
            "payment_p50_ms": median([c - r for _, r, c, _ in rows]),
            "settle_p50_ms": median([p - c for _, _, c, p in rows])}
