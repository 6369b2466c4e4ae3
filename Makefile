# The two commands of the README: `make run` and `make test`. Both set up everything
# they need on a fresh machine (virtualenv, packages), idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ATP := $(VENV)/bin/atp
SAMPLE_EVENTS ?= 200000

.PHONY: setup run test lint unit bench clean jars kafka-up redis-up flink-up services-up services-down up down

setup:
	@infra/bootstrap.sh

run: setup
	@mkdir -p var/sample
	$(ATP) simulate --events $(SAMPLE_EVENTS) --output var/sample/events.jsonl \
		--policy-output var/sample/policy.json
	$(ATP) replay --input var/sample/events.jsonl --output var/sample/snapshots.jsonl \
		--dlq var/sample/dead_letters.jsonl --exceptions var/sample/exceptions.jsonl \
		--policy var/sample/policy.json --channel-output var/sample/channels.jsonl
	@$(PY) -m pipelines.summary var/sample

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check transforms state pipelines tests bench api
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q tests/unit

test: setup lint
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/replay_throughput.py

clean:
	rm -rf var .cache

# Local services on 127.0.0.1 (Kafka :9092, Redis :6379, Flink REST :8081), state under var/.
jars: setup
	@infra/fetch-jars.sh

kafka-up: setup jars
	@infra/kafka.sh start

redis-up:
	@infra/redis.sh start

flink-up: setup jars
	@infra/flink.sh start

services-up: kafka-up redis-up flink-up
	@infra/kafka.sh topics

services-down:
	@infra/flink.sh stop --purge
	@infra/redis.sh stop --purge
	@infra/kafka.sh stop --purge

# Kafka, Redis and the stream job in the background; returns once all answer.
up: setup jars
	@infra/kafka.sh start
	@infra/kafka.sh topics
	@infra/redis.sh start
	@infra/job.sh start

down:
	@infra/job.sh stop
	@infra/redis.sh stop --purge
	@infra/kafka.sh stop --purge
	rm -rf var/job var/checkpoints
