"""``atp channel-sync``: channel ATP changes pushed to each sales channel's endpoint.

The pacing pieces (token bucket, coalescing queue, retry policy, offset tracking) are pure
and take the time as an argument; ``loop`` wires them to Kafka and the sinks.
See docs/channel-sync.md.
"""
