"""make bench: every benchmark, each printing a table and writing bench/out/<name>.json."""

from bench import asr, hd_voice, routing, screenpop, spine

spine.main()
asr.main()
hd_voice.main()
routing.main()
screenpop.main()
