"""Routing to the right person: the pure router and its policy, the ACD that drives it over AMI,
agents and presence, customers (store, CRM lookup, imports) and the screen pop's content.

Imports ``ivr.records``, ``ivr.telephony`` and ``ivr.voice.flow`` (the hold settings of a flow);
the router itself (``ivr.routing.router.router``) imports nothing of the project.
"""
