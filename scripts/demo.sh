#!/usr/bin/env bash
# make demo: start the stack and place a few simulated calls through the real Asterisk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IVR=.venv/bin/ivr
WORK=run/demo; mkdir -p "$WORK"

say() { espeak-ng -v "${3:-ko}" -s 140 -w "$WORK/$1.wav" "$2"; echo "$WORK/$1.wav"; }

# Each call checks the outcome its step announces (`ivr call --expect`): one that ends otherwise says
# "ENDED DIFFERENTLY" with what it ended with, and the demo lists it at the end (and exits non-zero).
# A confirmation ("…, right?"), should the recognizer be unsure, is answered by key 1 (yes).
DIFFERENT=()
check() {  # check STEP ivr-call-arguments...
  local step="$1"; shift
  if ! $IVR call "$@"; then DIFFERENT+=("$step"); fi
}

$IVR up
$IVR customers import dialplans/demo_customers.json
$IVR agents import dialplans/demo_agents.json
$IVR users demo
for agent in A1001 A1002 A1003 A1004 F2001 F2002; do $IVR agents presence "$agent" offline >/dev/null; done
echo
echo "== 1. A caller says '상담원 연결' (connect me to an agent): speech -> Vosk -> queue general"
agent_wav="$(say agent '상담원 연결')"
check 1 --caller 01012345678 --audio "$agent_wav" --dtmf 1 --expect intent=agent --expect queue=general
echo
echo "== 2. A caller says '계좌 이체' (account transfer): -> queue payments"
# espeak-ng's ko+f1 voice: its 계좌 이체 is heard right however the call frames it (the default voice's is
# mostly heard as 확인; tests/integration/test_navigation.py, TRANSFER_VOICE).
check 2 --caller 01022223333 --audio "$(say transfer '계좌 이체' ko+f1)" --dtmf 1 \
  --expect intent=transfer --expect queue=payments
echo
echo "== 3. A caller presses 2 (lost card): -> queue cards"
check 3 --caller 01044445555 --dtmf 2 --expect intent=lost_card --expect queue=cards
echo
echo "== 4. A known customer presses 1: hears their balance (self-service), then 9 to finish"
check 4 --caller 01012345678 --dtmf 1 --dtmf 9 --until end --timeout 60 --expect outcome=self_service
echo
echo "== 4b. The same question through a SIP phone registered to Asterisk (pyVoIP): -> queue general"
check 4b --sip --caller 01022223333 --audio "$agent_wav" --dtmf 1 --expect intent=agent --expect queue=general
echo
echo "== 5. A caller says nothing twice: never trapped, a person takes the call (queue general)"
check 5 --caller 01066667777 --timeout 60 --expect queue=general --expect outcome=queued
echo
echo "== 6. The controller is stopped: Asterisk's dialplan still queues the caller for a person (queue general)"
# Stopped as `ivr down` stops it (its supervisor too), so nothing restarts it during this call.
.venv/bin/python -c 'from ivr.config import load_settings; from ivr.ops import stack; stack.controller_down(load_settings())'
check 6 --caller 01088889999 --dtmf 2 --timeout 30 --expect queue=general --expect outcome=queued
$IVR up >/dev/null
echo
echo "== 7. Routing: a field loan manager (mobile 2001) and a desk agent (1002) sign in on softphones"
$IVR agents phone 2001 --talk 4 --seconds 60 & PHONE1=$!
$IVR agents phone 1002 --talk 4 --seconds 60 & PHONE2=$!
sleep 3
$IVR agents presence F2001 ready; $IVR agents presence A1002 ready
sleep 2
echo "-- VIP customer 김민준 presses 3 (loan): his case owner's mobile rings (rule: case owner): F2001 answers"
check 7a --caller 01012345678 --dtmf 3 --until answered --expect agent=F2001
sleep 6
$IVR agents presence F2001 not_ready --reason "visiting a client"
echo "-- Again, with the owner not ready: the desk agent who speaks his dialect (A1002) answers"
check 7b --caller 01012345678 --dtmf 3 --until answered --expect agent=A1002
kill $PHONE1 $PHONE2 2>/dev/null || true; wait 2>/dev/null || true
$IVR agents list
echo
$IVR status || true
echo
if ((${#DIFFERENT[@]})); then
  echo "NOT as announced: step(s) ${DIFFERENT[*]} ended differently (see ENDED DIFFERENTLY above)."
else
  echo "Every call ended as its step announced (each checked by ivr call --expect)."
fi
echo "Web pages: http://127.0.0.1:8080/agent  /field  /supervisor  /admin  /trainer  /reports  /qa  (users and passwords: run/demo_users.env)"
echo "The stack keeps running. Logs: run/logs/; recordings: recordings/. Stop it with: .venv/bin/ivr down"
echo "Metrics: http://127.0.0.1:8080/metrics (Prometheus format), readiness: /readyz, liveness: /healthz"
((${#DIFFERENT[@]} == 0))
