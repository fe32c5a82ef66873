"""The suite's password hasher: the product's PBKDF2-SHA256 at few iterations.

Every staff user a test makes (admin_client, staff_api, ...) hashed its password at Django's 1,000,000
iterations: 0.4 to 0.8 s of CPU a user on the CI machine, in the setup of well over a thousand tests. The
algorithm stays the product's, so a hash a test stores is one the servers it starts verify as they are
(PBKDF2 reads the iterations from the hash itself, then upgrades it to their own count, as on a real upgrade).
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """pbkdf2_sha256 with 1,000 iterations: the same hashes' shape and checks, for tests only."""

    iterations = 1_000
