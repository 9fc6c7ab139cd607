"""Tests of ivr.voice.navigator: its listening loop and its turn logic, over a fake line."""
