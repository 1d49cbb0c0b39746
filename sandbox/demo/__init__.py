"""The demo: two queues whose handlers call a stand-in vendor API, a burst of messages, a killed loop."""
