#!/bin/sh
# PreToolUse hook for the dmig tools that can drop, replace or overwrite data (the matcher in
# hooks.json lists them). It always answers "ask", so Claude Code shows the user a confirmation
# naming the tool and its consequence, even when the user allowed all dmig tools. It parses the
# tool name with sed (no jq, no Python) so that it cannot fail on a machine missing either:
# a hook that errors would let the call through without asking.
input=$(cat)
tool=$(printf '%s\n' "$input" |
    sed -n 's/.*"tool_name"[[:space:]]*:[[:space:]]*"mcp__plugin_agileflow_dmig__\([a-z_]*\)".*/\1/p' |
    head -n 1)
case "$tool" in
complete_migration) what="contracts the migration: the old columns or tables it replaces are dropped for good" ;;
abort_migration) what="undoes expand and backfill: what the migration added is dropped" ;;
rollback) what="restores the database from its backup: every change made since that backup is lost" ;;
copy) what="writes into the target database and can replace the rows already there" ;;
restore_backup) what="replaces the rows of the restored tables with the backup's: later changes to them are lost" ;;
prune_backups) what="deletes backup files for good" ;;
run_migration) what="runs the plan's SQL, including any raw_sql step as written: it can drop or rewrite tables" ;;
verify | session_resume | baseline) what="runs a shell command with your user's rights: the project's test command from docs/00-meta/environment.json, only if you approved that exact command in a terminal (dmig approve-test-command); the result names the command" ;;
*)
    tool=${tool:-tool}
    what="can change or drop data"
    ;;
esac
printf '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"ask","permissionDecisionReason":"dmig %s %s. Go ahead only with a verified backup and a reviewed plan."}}\n' "$tool" "$what"
