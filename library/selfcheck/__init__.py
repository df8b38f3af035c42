"""Self-service: the SIP2 server that RFID self-check machines speak, and their kiosk accounts."""
