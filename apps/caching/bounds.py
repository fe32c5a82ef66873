"""Bounds of the cache settings that code past settings.py relies on. Plain Python, no Django: safe at settings
time, so settings.py and the cache stack read the one value (a copy in each drifted only a test apart)."""

# The upper bound settings.py applies to CACHE_SINGLE_FLIGHT_WAIT_SECONDS. The cache stack derives from it the
# longest lease any process may give its single-flight lock, and takes over only a lock above twice that.
MAX_SINGLE_FLIGHT_WAIT_SECONDS = 3600.0
