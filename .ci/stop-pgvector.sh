#!/usr/bin/env bash
# Stops and deletes the throwaway pgvector cluster started by start-pgvector.sh.
exec bash "$(dirname "$0")/start-pgvector.sh" stop
