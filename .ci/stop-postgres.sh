#!/usr/bin/env bash
# Stops and deletes the throwaway PostgreSQL cluster started by start-postgres.sh.
exec bash "$(dirname "$0")/start-postgres.sh" stop
