"""The one parser bdr has for each foreign file format (redis.conf, docker compose)."""
