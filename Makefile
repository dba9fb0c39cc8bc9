# The two commands of README.md. Both bring up what is missing first
# (scripts/services.sh: PostgreSQL and Redis, installed with apt or started;
# it says what it will change before it changes anything).
#
#   make run    PostgreSQL and Redis, then chatd (every role, embedded
#               JetStream) on CHAT_HTTP_ADDR (127.0.0.1:8080); CHAT_* settings
#               in the environment pass through
#   make test   vet and the whole test suite with -race (what .ci/run runs)

# Go lives in /usr/local/go on the machines the README describes.
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

.PHONY: run test services

services:
	@bash scripts/services.sh up

run: services
	go build -o bin/chatd ./cmd/chatd
	exec bin/chatd

test: services
	@bash scripts/services.sh compiler
	go vet ./... && go test -race -count=1 -timeout 20m ./...
