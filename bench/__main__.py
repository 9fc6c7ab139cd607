"""make bench: every benchmark, each printing a table and writing bench/out/<name>.json."""

from bench import asr, hd_voice, routing, screenpop, spine, trainer_report
from bench import qa as qa_bench
from bench import replay as replay_bench
from bench import webrtc as webrtc_bench

spine.main()
asr.main()
hd_voice.main()
routing.main()
screenpop.main()
replay_bench.main()
trainer_report.main()
qa_bench.main()
webrtc_bench.main()
