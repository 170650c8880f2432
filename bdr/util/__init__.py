"""Small helpers every layer uses: durations, units, polling, host facts, progress."""
