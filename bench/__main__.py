"""make bench: every benchmark, each printing a table and writing bench/out/<name>.json."""

from bench import asr, routing, screenpop, spine

spine.main()
asr.main()
routing.main()
screenpop.main()
