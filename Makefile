# The two commands of the README: `make run` and `make test`. Both set up everything
# they need on a fresh machine (virtualenv, packages), idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ATP := $(VENV)/bin/atp
SAMPLE_EVENTS ?= 100000
# How long `make run` waits for the job to catch up before it gives up.
RUN_TIMEOUT ?= 1800

.PHONY: setup run demo-offline test lint unit bench clean jars kafka-up redis-up flink-up services-up services-down up down

setup:
	@infra/bootstrap.sh

# The pipeline on real services: simulate a log, bring everything up (the job with the
# log's channel policy), publish the log to Kafka and watch the job until it has caught up.
run: setup jars
	@mkdir -p var/sample
	$(ATP) simulate --events $(SAMPLE_EVENTS) --output var/sample/events.jsonl \
		--policy-output var/sample/policy.json
	@$(MAKE) --no-print-directory up ATP_JOB_ARGS="--policy $(CURDIR)/var/sample/policy.json"
	$(ATP) produce --input var/sample/events.jsonl
	$(ATP) status --watch --until-caught-up --timeout $(RUN_TIMEOUT)
	@echo
	@echo "The job keeps running. Next:"
	@echo "  $(ATP) status --watch       live view of the job (Ctrl-C leaves it)"
	@echo "  $(ATP) dump --output FILE   the serving store as JSON lines"
	@echo "  make demo-offline                  the same log through atp replay, no services"
	@echo "  make down                          stop everything and remove its data"

# The same simulated log through the engine-free replay: no services, a summary.
demo-offline: setup
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
	@for script in infra/*.sh .ci/run; do bash -n "$$script" || exit 1; done

unit: setup
	$(VENV)/bin/pytest -q tests/unit

test: setup lint
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/replay_throughput.py
	$(PY) -m bench.backfill_throughput

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

# Kafka, the schema registry, Redis and the stream job in the background; returns once
# all answer (the job: after its first checkpoint). Extra `atp job` flags: ATP_JOB_ARGS.
up: setup jars
	@infra/kafka.sh start
	@infra/kafka.sh topics
	@infra/registry.sh start
	@infra/redis.sh start
	@ATP_JOB_ARGS="$(ATP_JOB_ARGS)" infra/job.sh start

down:
	@infra/job.sh stop
	@infra/registry.sh stop --purge
	@infra/redis.sh stop --purge
	@infra/kafka.sh stop --purge
	rm -rf var/job var/checkpoints
