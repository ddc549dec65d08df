# Developer tasks. The local service stack is described in infra/README.md.
SHELL := /bin/bash
STACK := scripts/stack/stack.sh

.DEFAULT_GOAL := help
.PHONY: help install-system up down status

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install-system: ## Install the stack's Debian packages and Kafka jars
	$(STACK) install

up: ## Start Kafka, PostgreSQL, Redis and ClickHouse on 127.0.0.1 (installs what is missing)
	$(STACK) up

down: ## Stop the stack's services; data stays in CIE_DATA_DIR
	$(STACK) down

status: ## Print one line per service: running or stopped, pid, address
	@$(STACK) status
