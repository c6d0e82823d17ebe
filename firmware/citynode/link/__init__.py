"""The way out: the MQTT client, the outbox on flash, the publisher between
them, commands from the broker and Home Assistant discovery."""
