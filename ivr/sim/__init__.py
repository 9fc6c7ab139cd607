"""Development and test tools: the call simulator behind ``ivr call``, the SIP test caller and
the agents' test softphones. Used by the CLI, the demo, the tests and the benchmarks; the
controller never imports it.
"""
