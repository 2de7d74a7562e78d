#!/bin/sh
# PreToolUse hook on Claude Code's Bash tool: the agent must never approve the test command itself.
# `dmig approve-test-command` (and `dmig session-init --test-command`, which approves what it is given)
# is the user's act in their own terminal; an agent that ran it through its shell would turn a proposal
# it made (perhaps under prompt injection) into an approved command. Quotes, backslashes and blanks are
# removed before matching so that `appro""ve-test-command` or `approve\-test-command` cannot slip by.
# Any other command gets no answer from this hook (exit 0, no output): Claude Code's own rules apply.
input=$(cat)
flat=$(printf '%s' "$input" | tr -d "\"'\\\\ \t\n\`" | tr '[:upper:]' '[:lower:]')
case "$flat" in
*approve-test-command* | *approve_test_command* | *--test-command* | *test-command-approvals* | *harness.approval* | *harnessimportapproval*)
    printf '%s\n' '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"Only the user approves a test command, in their own terminal (dmig approve-test-command, or dmig session-init --test-command). Ask the user to run it; do not run it, script it or edit the approvals file."}}'
    ;;
esac
exit 0
