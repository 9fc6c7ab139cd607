"""Development and test tools: the call simulator behind ``ivr call``, the SIP test caller and the agents'
test softphones (pyVoIP, the ``[sim]`` extra, with its fixes in ``pyvoip_patches``), and the demo's web
users. Used by the CLI, the demo, the tests and the benchmarks; the controller never imports it.
"""
