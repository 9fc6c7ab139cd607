#!/usr/bin/env bash
# make demo: start the stack and place a few simulated calls through the real Asterisk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IVR=.venv/bin/ivr
WORK=run/demo; mkdir -p "$WORK"

say() { espeak-ng -v ko -s 140 -w "$WORK/$1.wav" "$2"; echo "$WORK/$1.wav"; }

$IVR up
$IVR customers import dialplans/demo_customers.json
$IVR agents import dialplans/demo_agents.json
$IVR users demo
for agent in A1001 A1002 A1003 A1004 F2001 F2002; do $IVR agents presence "$agent" offline >/dev/null; done
echo
echo "== 1. A caller says '상담원 연결' (connect me to an agent): speech -> Vosk -> queue general"
agent_wav="$(say agent '상담원 연결')"
$IVR call --caller 01012345678 --audio "$agent_wav"
echo
echo "== 2. A caller says '계좌 이체' (account transfer): -> queue payments"
$IVR call --caller 01022223333 --audio "$(say transfer '계좌 이체')"
echo
echo "== 3. A caller presses 2 (lost card): -> queue cards"
$IVR call --caller 01044445555 --dtmf 2
echo
echo "== 4. A known customer presses 1: hears their balance (self-service), then 9 to finish"
$IVR call --caller 01012345678 --dtmf 1 --dtmf 9 --until end --timeout 60
echo
echo "== 4b. The same question through a SIP phone registered to Asterisk (pyVoIP)"
$IVR call --sip --caller 01022223333 --audio "$agent_wav"
echo
echo "== 5. A caller says nothing twice: never trapped, a person takes the call"
$IVR call --caller 01066667777 --timeout 60
echo
echo "== 6. The controller is stopped: Asterisk's dialplan still queues the caller for a person"
kill "$(cat run/pids/controller.pid)" 2>/dev/null || true; sleep 1
$IVR call --caller 01088889999 --dtmf 2 --timeout 30
$IVR up >/dev/null
echo
echo "== 7. Routing: a field loan manager (mobile 2001) and a desk agent (1002) sign in on softphones"
$IVR agents phone 2001 --talk 4 --seconds 60 & PHONE1=$!
$IVR agents phone 1002 --talk 4 --seconds 60 & PHONE2=$!
sleep 3
$IVR agents presence F2001 ready; $IVR agents presence A1002 ready
sleep 2
echo "-- VIP customer 김민준 presses 3 (loan): his case owner's mobile rings (rule: case owner)"
$IVR call --caller 01012345678 --dtmf 3 --until answered
sleep 6
$IVR agents presence F2001 not_ready --reason "visiting a client"
echo "-- Again, with the owner not ready: the desk agent who speaks his dialect answers"
$IVR call --caller 01012345678 --dtmf 3 --until answered
kill $PHONE1 $PHONE2 2>/dev/null || true; wait 2>/dev/null || true
$IVR agents list
echo
$IVR status || true
echo
echo "Web pages: http://127.0.0.1:8080/agent  /field  /supervisor  /admin  /trainer  /reports  /qa  (users and passwords: run/demo_users.env)"
echo "The stack keeps running. Logs: run/logs/; recordings: recordings/. Stop it with: .venv/bin/ivr down"
